using System.Net;

namespace L2Balance.Proxy.Migration;

/// <summary>The TCP options a connection negotiated, as TCP_REPAIR_OPTIONS restores them.</summary>
[Flags]
public enum TcpLegOptions : byte
{
    None = 0,
    Sack = 1,
    Timestamps = 2,
    WindowScale = 4,
}

/// <summary>The window of a connection (struct tcp_repair_window): what the peer allows, what we announced.</summary>
public readonly record struct TcpLegWindow(uint SndWl1, uint SndWnd, uint MaxWindow, uint RcvWnd, uint RcvWup);

/// <summary>
/// One frozen TCP connection: its 4-tuple, sequence numbers, both queues, window and options, all that
/// <see cref="TcpRepair.Restore"/> needs to rebuild it on another node (docs/design.md#live-migration-design).
/// </summary>
/// <param name="Local">This side's address and port (the VIP's, in single-IP mode).</param>
/// <param name="Remote">The peer's address and port.</param>
/// <param name="SendSeq">write_seq: the sequence number after the last byte in the send queue.</param>
/// <param name="RecvSeq">rcv_nxt: the sequence number after the last byte received in order.</param>
/// <param name="SendQueue">Every byte written and not yet acknowledged by the peer (sent or not).</param>
/// <param name="UnsentLength">How many bytes at the end of <paramref name="SendQueue"/> were never sent.</param>
/// <param name="ReceiveQueue">Bytes received and acknowledged that the application has not read yet.</param>
/// <param name="Mss">The MSS clamp (the peer's announced MSS).</param>
/// <param name="Options">The options negotiated at the handshake (tcp_info.tcpi_options).</param>
/// <param name="SndWscale">The peer's window scale.</param>
/// <param name="RcvWscale">Our window scale.</param>
/// <param name="Timestamp">The connection's TCP timestamp clock (TCP_TIMESTAMP), when timestamps are on.</param>
/// <param name="Window">The window (TCP_REPAIR_WINDOW).</param>
public sealed record TcpLegState(
    IPEndPoint Local,
    IPEndPoint Remote,
    uint SendSeq,
    uint RecvSeq,
    byte[] SendQueue,
    int UnsentLength,
    byte[] ReceiveQueue,
    ushort Mss,
    TcpLegOptions Options,
    byte SndWscale,
    byte RcvWscale,
    uint Timestamp,
    TcpLegWindow Window)
{
    /// <summary>The largest window scale TCP allows (RFC 7323 section 2.3).</summary>
    public const byte MaxWscale = 14;
}

/// <summary>
/// A UDP association that moves with its control connection: the client's UDP address (learned or
/// announced), the relay's client-facing endpoint, its target-facing sockets' endpoints (one per family,
/// made on first use: replies from targets come back to them), and what the rules of later datagrams
/// depend on: the method negotiated (RFC 1928 code) and the user name (RFC 1929), if any.
/// </summary>
public readonly record struct UdpAssociationState(
    IPEndPoint Client,
    IPEndPoint Relay,
    IPEndPoint? Outbound4 = null,
    IPEndPoint? Outbound6 = null,
    byte Method = 0,
    string? User = null)
{
    /// <summary>Longest user name carried: RFC 1929 allows 255 bytes.</summary>
    public const int MaxUserLength = 255;
}

/// <summary>What a session is: a relayed TCP connection (CONNECT, BIND) or a UDP association.</summary>
public enum SessionKind : byte
{
    TcpRelay = 1,
    UdpAssociation = 2,
}

/// <summary>
/// A whole relayed session, frozen: its TCP legs (client then target for a relay; the control
/// connection for a UDP association), the bytes the relay held in user space in each direction, and
/// the UDP association. The unit that the migration channel carries (<see cref="SessionStateCodec"/>).
/// </summary>
public sealed record SessionState(
    SessionKind Kind,
    IReadOnlyList<TcpLegState> Legs,
    byte[] HeldToTarget,
    byte[] HeldToClient,
    UdpAssociationState? Udp);
