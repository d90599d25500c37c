using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Rules;

/// <summary>
/// Dante's rule semantics as pure functions (docs/conventions.md §7): first matching rule wins; when none
/// matches the request is blocked with no rule named.
/// </summary>
/// <remarks>
/// Matching: a network matcher compares the address family and prefix; IPv4-mapped IPv6
/// addresses are compared as IPv4. Dante's <c>0/0</c> (network 0.0.0.0, prefix 0, also written
/// <c>0.0.0.0/0</c>) matches everything: any IPv4, any IPv6 and any name, as it does in Dante;
/// <c>::/0</c> matches IPv6 only. A domain matcher (<c>example.com</c> exactly, <c>.example.com</c>
/// for it and its subdomains) matches only a destination given as a name, case-insensitively, and
/// never a client (names of clients are not looked up). A null set (commands, methods, users)
/// matches anything. A protected destination (<see cref="SocksRequestContext.Protection"/>) passes
/// only by a rule whose <c>to:</c> names it (<see cref="ProtectedDestinations.Names"/>); other pass rules are skipped.
/// </remarks>
public static class RuleEvaluator
{
    /// <summary>
    /// Client rules: <c>from</c> is matched against the client's address and port, <c>to</c> against
    /// the local address and port the client connected to.
    /// </summary>
    public static RuleVerdict EvaluateClient(IReadOnlyList<ClientRule> rules, IPEndPoint client, IPEndPoint local)
    {
        ArgumentNullException.ThrowIfNull(rules);
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(local);
        foreach (var rule in rules)
        {
            if (MatchesAddress(rule.From, client.Address, null, client.Port)
                && MatchesAddress(rule.To, local.Address, null, local.Port))
            {
                return new RuleVerdict(rule.Action, rule.Log, rule.Source, null, Gssapi: rule.Gssapi);
            }
        }

        return NoMatch;
    }

    /// <summary>
    /// Socks rules: <c>from</c> against the client, <c>to</c> against the destination (its address, or
    /// for a name the resolved address for networks and the name for domains), then command, protocol,
    /// method and user.
    /// </summary>
    public static RuleVerdict EvaluateSocks(IReadOnlyList<SocksRule> rules, in SocksRequestContext request)
    {
        ArgumentNullException.ThrowIfNull(rules);
        ArgumentNullException.ThrowIfNull(request.Client);
        var destinationAddress = request.Destination.Address ?? request.ResolvedDestination;
        bool skippedForProtection = false;
        foreach (var rule in rules)
        {
            if (MatchesAddress(rule.From, request.Client.Address, null, request.Client.Port)
                && MatchesAddress(rule.To, destinationAddress, request.Destination.Host, request.Destination.Port)
                && (rule.Commands is null || rule.Commands.Contains(request.Command))
                && (rule.Protocols & request.Protocol) != 0
                && (rule.Methods is null || rule.Methods.Contains(request.Method))
                && (rule.Users is null || (request.User is { } user && rule.Users.Contains(user))))
            {
                if (rule.Action == RuleAction.Pass && request.Protection != DestinationClass.Ordinary
                    && !ProtectedDestinations.Names(rule.To, destinationAddress!, request.Protection))
                {
                    // A pass rule that does not name a protected destination does not apply to it (docs/sockd-conf.md#protected-destinations).
                    skippedForProtection = true;
                    continue;
                }

                return new RuleVerdict(rule.Action, rule.Log, rule.Source, rule.UdpPortRange);
            }
        }

        return skippedForProtection ? NoMatch with { Protected = request.Protection } : NoMatch;
    }

    private static RuleVerdict NoMatch => new(RuleAction.Block, RuleLog.None, null, null);

    /// <summary>Whether <paramref name="matcher"/> matches an address and/or a name, and a port.</summary>
    public static bool MatchesAddress(AddressMatcher matcher, IPAddress? address, string? host, int port)
    {
        ArgumentNullException.ThrowIfNull(matcher);
        return MatchesHost(matcher, address, host) && (matcher.Port is not { } portMatcher || MatchesPort(portMatcher, port));
    }

    private static bool MatchesHost(AddressMatcher matcher, IPAddress? address, string? host)
    {
        if (matcher.Network is { } network)
        {
            if (matcher.PrefixLength == 0 && network.Equals(IPAddress.Any))
            {
                return true; // Dante's 0/0: everything.
            }

            return address is not null && InNetwork(address, network, matcher.PrefixLength);
        }

        if (matcher.Domain is { } domain)
        {
            return host is not null && MatchesDomain(domain, host);
        }

        return true;
    }

    /// <summary>Prefix comparison; IPv4-mapped IPv6 is compared as IPv4 on both sides.</summary>
    public static bool InNetwork(IPAddress address, IPAddress network, int prefixLength)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(network);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (network.IsIPv4MappedToIPv6)
        {
            network = network.MapToIPv4();
            prefixLength = Math.Max(0, prefixLength - 96);
        }

        if (address.AddressFamily != network.AddressFamily)
        {
            return false;
        }

        Span<byte> a = stackalloc byte[16], n = stackalloc byte[16];
        if (!address.TryWriteBytes(a, out int length) || !network.TryWriteBytes(n, out _))
        {
            return false;
        }

        int maxPrefix = length * 8;
        if (prefixLength >= maxPrefix)
        {
            return a[..length].SequenceEqual(n[..length]);
        }

        int whole = prefixLength / 8, bits = prefixLength % 8;
        if (!a[..whole].SequenceEqual(n[..whole]))
        {
            return false;
        }

        byte mask = (byte)(0xFF << (8 - bits));
        return bits == 0 || (a[whole] & mask) == (n[whole] & mask);
    }

    /// <summary><c>example.com</c> matches that name only; <c>.example.com</c> matches it and every subdomain.
    /// Case-insensitive; a trailing dot on the host (fully qualified form) is ignored.</summary>
    public static bool MatchesDomain(string domain, string host)
    {
        ArgumentNullException.ThrowIfNull(domain);
        ArgumentNullException.ThrowIfNull(host);
        ReadOnlySpan<char> name = host.AsSpan().TrimEnd('.');
        if (domain.StartsWith('.'))
        {
            return name.Equals(domain.AsSpan(1), StringComparison.OrdinalIgnoreCase)
                || name.EndsWith(domain, StringComparison.OrdinalIgnoreCase);
        }

        return name.Equals(domain, StringComparison.OrdinalIgnoreCase);
    }

    public static bool MatchesPort(PortMatcher matcher, int port) => matcher.Operator switch
    {
        PortOperator.Eq => port == matcher.Port,
        PortOperator.Neq => port != matcher.Port,
        PortOperator.Ge => port >= matcher.Port,
        PortOperator.Le => port <= matcher.Port,
        PortOperator.Gt => port > matcher.Port,
        PortOperator.Lt => port < matcher.Port,
        PortOperator.Range => port >= matcher.Port && port <= matcher.High,
        _ => false,
    };
}
