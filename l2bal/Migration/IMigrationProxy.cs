using System.Net;

namespace L2Balance.Balancer.Migration;

/// <summary>What <c>move</c> answered for one session: moved (with the pause it saw) or stayed (with the reason).</summary>
internal readonly record struct MoveOutcome(string Id, bool Moved, int PauseMs, string? Reason);

/// <summary>What <c>prepare</c> answered for one session: prepared (Reason null) or stayed (with the reason).</summary>
internal readonly record struct PrepareOutcome(string Id, string? Reason);

/// <summary>
/// The local l2proxy's migration control socket (docs/design.md#migration-orchestration): l2bal
/// decides what moves, l2proxy does the socket work. Implementations: <see cref="MigrationProxyClient"/>;
/// test doubles in tests. Every call throws <see cref="MigrationProxyException"/> when the proxy cannot be
/// reached or answers outside the protocol.
/// </summary>
internal interface IMigrationProxy
{
    /// <summary><c>key EPOCH HEX</c>: the channel key (never the cluster key).</summary>
    public void Key(uint epoch, ReadOnlySpan<byte> channelKey);

    /// <summary><c>accept ADDR:PORT</c>: take incoming migrations there.</summary>
    public void Accept(IPEndPoint at);

    /// <summary><c>list</c>: the established sessions.</summary>
    public IReadOnlyList<ProxySession> List();

    /// <summary><c>prepare PEER ID...</c>: the peer captures these sessions' flows before they are dropped here; nothing pauses.</summary>
    public IReadOnlyList<PrepareOutcome> Prepare(IPEndPoint peer, IReadOnlyList<string> ids);

    /// <summary><c>move PEER ID...</c>: one outcome per id the proxy answered.</summary>
    public IReadOnlyList<MoveOutcome> Move(IPEndPoint peer, IReadOnlyList<string> ids);
}

/// <summary>The proxy could not be reached, refused, or answered outside the protocol.</summary>
internal sealed class MigrationProxyException : Exception
{
    public MigrationProxyException()
    {
    }

    public MigrationProxyException(string message)
        : base(message)
    {
    }

    public MigrationProxyException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
