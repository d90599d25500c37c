using System.Net;
using System.Net.Sockets;

namespace L2Balance.Balancer.Control;

/// <summary>What a control request asks for.</summary>
internal enum ControlVerb
{
    /// <summary>Anything else: answered with the list of requests.</summary>
    Unknown,
    Status,
    Owner,
    Drain,
    Undrain,
}

/// <summary>
/// One request line of the control protocol, parsed (the protocol's whole grammar, kept apart from
/// the socket and the daemon so it can be tested and fuzzed alone): <c>status [--json]</c>,
/// <c>owner ADDRESS</c> (IPv4 or IPv6), <c>drain</c>, <c>undrain</c>; words separated by spaces.
/// </summary>
internal readonly record struct ControlCommand(ControlVerb Verb, bool Json = false, IPAddress? Address = null)
{
    /// <summary>Parses a request line as the control socket received it (decoded and trimmed); never throws.</summary>
    public static ControlCommand Parse(string request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var parts = request.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.FirstOrDefault() switch
        {
            "status" => new ControlCommand(ControlVerb.Status, Json: parts.Contains("--json")),
            "owner" when parts.Length == 2 && IPAddress.TryParse(parts[1], out var address) && IsClientAddress(address) =>
                new ControlCommand(ControlVerb.Owner, Address: address),
            "drain" => new ControlCommand(ControlVerb.Drain),
            "undrain" => new ControlCommand(ControlVerb.Undrain),
            _ => default,
        };
    }

    /// <summary>An address the filter buckets: IPv4, or IPv6 neither IPv4-mapped nor scoped (docs/design.md#buckets-and-the-hash).</summary>
    public static bool IsClientAddress(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetwork
        || (address.AddressFamily == AddressFamily.InterNetworkV6 && !address.IsIPv4MappedToIPv6 && address.ScopeId == 0);

    /// <summary>The canonical request line, which parses back to this command.</summary>
    public override string ToString() => Verb switch
    {
        ControlVerb.Status => Json ? "status --json" : "status",
        ControlVerb.Owner => $"owner {Address}",
        ControlVerb.Drain => "drain",
        ControlVerb.Undrain => "undrain",
        _ => "",
    };
}
