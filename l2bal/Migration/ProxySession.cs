using System.Globalization;
using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Kernel;

namespace L2Balance.Balancer.Migration;

/// <summary>What a relayed session is, as l2proxy's <c>list</c> names it.</summary>
internal enum SessionKind
{
    Connect,
    Bind,
    Udp,
}

/// <summary>
/// One established session of the local l2proxy (a line of <c>list</c>, docs/design.md#migration-orchestration):
/// the client leg (client ↔ VIP service port) and the target leg (VIP slice port ↔ target; for a UDP
/// association the relay's endpoint on the VIP and its peer), the bytes held, and why it cannot move.
/// </summary>
internal sealed record ProxySession(string Id, SessionKind Kind, IPEndPoint Client, IPEndPoint ClientVip, IPEndPoint TargetVip, IPEndPoint Target, long HeldBytes, string? Stays)
{
    /// <summary>Longest session id taken from the proxy (a token of letters, digits, '-', '_', '.', ':').</summary>
    public const int MaxIdLength = 64;

    /// <summary>The flows as packets to this node carry them: client → VIP, and target → VIP (UDP for a UDP association's relay).</summary>
    public IReadOnlyList<FlowTuple> InboundFlows() =>
    [
        new FlowTuple(ProtocolType.Tcp, Client, ClientVip),
        new FlowTuple(Kind == SessionKind.Udp ? ProtocolType.Udp : ProtocolType.Tcp, Target, TargetVip),
    ];

    /// <summary>
    /// Parses <c>session ID KIND CLIENT VIP VIP TARGET HELD movable|stays=REASON</c>; false for anything
    /// else (the line comes from another process: checked, never trusted).
    /// </summary>
    public static bool TryParse(string line, out ProxySession? session)
    {
        ArgumentNullException.ThrowIfNull(line);
        session = null;
        var f = line.Split(' ');
        if (f.Length != 9 || f[0] != "session" || !IsToken(f[1], MaxIdLength)
            || !TryKind(f[2], out var kind)
            || !TryEndpoint(f[3], out var client) || !TryEndpoint(f[4], out var clientVip)
            || !TryEndpoint(f[5], out var targetVip) || !TryEndpoint(f[6], out var target)
            || !long.TryParse(f[7], NumberStyles.None, CultureInfo.InvariantCulture, out var held))
        {
            return false;
        }
        string? stays;
        if (f[8] == "movable")
        {
            stays = null;
        }
        else if (f[8].StartsWith("stays=", StringComparison.Ordinal) && IsToken(f[8][6..], 32))
        {
            stays = f[8][6..];
        }
        else
        {
            return false;
        }
        session = new ProxySession(f[1], kind, client!, clientVip!, targetVip!, target!, held, stays);
        return true;
    }

    private static bool TryKind(string text, out SessionKind kind)
    {
        kind = text switch { "connect" => SessionKind.Connect, "bind" => SessionKind.Bind, "udp" => SessionKind.Udp, _ => (SessionKind)(-1) };
        return kind >= 0;
    }

    private static bool TryEndpoint(string text, out IPEndPoint? endpoint) =>
        IPEndPoint.TryParse(text, out endpoint) && endpoint.Port > 0 && text.Contains(':', StringComparison.Ordinal);

    /// <summary>A word of the protocol: 1..<paramref name="max"/> of [a-z A-Z 0-9 - _ . :].</summary>
    public static bool IsToken(string text, int max) =>
        text.Length is > 0 && text.Length <= max && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':');
}
