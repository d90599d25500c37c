using System.Globalization;
using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Config;

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

    /// <summary>Move the sessions whose bucket this node does not own to its owner (issue 19).</summary>
    Migrate,
}

/// <summary>
/// One request line of the control protocol, parsed (the protocol's whole grammar, kept apart from
/// the socket and the daemon so it can be tested and fuzzed alone): <c>status [--json]</c>,
/// <c>owner ADDRESS [PROTO/PORT [SOURCEPORT]]</c> (IPv4 or IPv6), <c>drain [--migrate]</c>, <c>undrain</c>, <c>migrate</c>; words separated by spaces.
/// </summary>
internal readonly record struct ControlCommand(ControlVerb Verb, bool Json = false, IPAddress? Address = null, ServiceSpec? Port = null, int? SourcePort = null, bool Migrate = false)
{
    /// <summary>Parses a request line as the control socket received it (decoded and trimmed); never throws.</summary>
    public static ControlCommand Parse(string request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var parts = request.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.FirstOrDefault() switch
        {
            "status" => new ControlCommand(ControlVerb.Status, Json: parts.Contains("--json")),
            "owner" when parts.Length is >= 2 and <= 4 && IPAddress.TryParse(parts[1], out var address) && IsClientAddress(address)
                && (parts.Length < 3 || TryPort(parts[2], out _)) && (parts.Length < 4 || TrySourcePort(parts[3], out _)) =>
                new ControlCommand(ControlVerb.Owner, Address: address,
                    Port: parts.Length >= 3 && TryPort(parts[2], out var port) ? port : null,
                    SourcePort: parts.Length == 4 && TrySourcePort(parts[3], out var sourcePort) ? sourcePort : null),
            "drain" => new ControlCommand(ControlVerb.Drain, Migrate: parts.Contains("--migrate")),
            "migrate" => new ControlCommand(ControlVerb.Migrate),
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
        ControlVerb.Owner => $"owner {Address}{(Port is { } p ? $" {p}" : "")}{(SourcePort is { } sp ? string.Create(CultureInfo.InvariantCulture, $" {sp}") : "")}",
        ControlVerb.Drain => Migrate ? "drain --migrate" : "drain",
        ControlVerb.Migrate => "migrate",
        ControlVerb.Undrain => "undrain",
        _ => "",
    };

    /// <summary>Parses <c>tcp/PORT</c> or <c>udp/PORT</c>.</summary>
    public static bool TryPort(string text, out ServiceSpec port)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('/');
        port = default;
        if (parts.Length != 2 || parts[0] is not ("tcp" or "udp")
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number is < 1 or > 65535)
        {
            return false;
        }
        port = new ServiceSpec(parts[0], number);
        return true;
    }

    /// <summary>Parses a source port, 0 to 65535.</summary>
    public static bool TrySourcePort(string text, out int port) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port <= 65535;
}
