using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace L2Balance.Proxy.Migration;

/// <summary>An inbound TCP flow: the end's address and port, and this node's (the VIP's), both as IPv6 (IPv4 mapped).</summary>
public readonly record struct InboundFlow(UInt128 Source, ushort SourcePort, UInt128 Destination, ushort DestinationPort)
{
    /// <summary>The flow that arrives at a socket bound to <paramref name="local"/> from <paramref name="remote"/>.</summary>
    public static InboundFlow Of(IPEndPoint remote, IPEndPoint local) =>
        new(Address(remote.Address), (ushort)remote.Port, Address(local.Address), (ushort)local.Port);

    public static UInt128 Address(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        (address.AddressFamily == AddressFamily.InterNetwork ? address.MapToIPv6() : address).TryWriteBytes(bytes, out _);
        return BinaryPrimitives.ReadUInt128BigEndian(bytes);
    }

    /// <summary>An IPv4 address (4 bytes, network order) as its IPv4-mapped IPv6 number.</summary>
    public static UInt128 MappedV4(ReadOnlySpan<byte> v4) => ((UInt128)0xFFFF << 32) | BinaryPrimitives.ReadUInt32BigEndian(v4);
}

/// <summary>
/// The new node's capture of announced flows while they move (docs/design.md#the-pause): an AF_PACKET
/// socket on every interface sees a frame before netdev ingress drops it, so a segment an end sends
/// while its flow is dropped on both nodes is kept here and appended to the restored socket's receive
/// queue instead of waiting for the end's retransmission timer. A classic BPF filter passes IPv4 and
/// IPv6 TCP only; tuples are matched here, each flow bounded in segments and bytes. Needs CAP_NET_RAW.
/// </summary>
internal sealed class SegmentCapture : IDisposable
{
    /// <summary>Per flow: a few round trips of an end's window is all a move's pause can hold.</summary>
    public const int MaxBytesPerFlow = 256 * 1024;

    private const int ReaderBatch = 64;
    private const int SOL_SOCKET = 1;
    private const int SO_ATTACH_FILTER = 26;
    private const int SOL_PACKET = 263;
    private const int PACKET_IGNORE_OUTGOING = 23;
    private const int PACKET_STATISTICS = 6;

    /// <summary>htons(ETH_P_ALL): the socket is hooked on every interface from its creation (no bind).</summary>
    private const int EthPAllNetworkOrder = 0x0300;

    private readonly Socket _socket;
    private readonly Thread _reader;
    private readonly byte[] _buffer = new byte[65536];
    private readonly Dictionary<InboundFlow, CapturedFlow> _flows = [];

    /// <summary>Flows taken at Go whose socket is not marked yet: what arrives meanwhile reaches neither copy.</summary>
    private readonly Dictionary<InboundFlow, int> _taken = [];
    private readonly Action? _unparsed;

    private long _segments;

    private SegmentCapture(Socket socket, Action? unparsed)
    {
        _socket = socket;
        _unparsed = unparsed;
        _reader = new Thread(Read) { IsBackground = true, Name = "l2proxy migration capture" };
        _reader.Start();
    }

    /// <summary>Segments of watched flows taken so far (all flows, this capture's life).</summary>
    public long Segments => Interlocked.Read(ref _segments);

    /// <summary>Opens the capture; <see cref="SocketException"/> (EPERM without CAP_NET_RAW) when it cannot. <paramref name="unparsed"/> counts each frame it cannot read.</summary>
    public static SegmentCapture Open(Action? unparsed = null)
    {
        var socket = new Socket(AddressFamily.Packet, SocketType.Dgram, (ProtocolType)EthPAllNetworkOrder);
        try
        {
            AttachTcpFilter(socket);
            // Frames this host sends are not the ends' segments.
            socket.SetRawSocketOption(SOL_PACKET, PACKET_IGNORE_OUTGOING, BitConverter.GetBytes(1));
            socket.ReceiveBufferSize = 4 * 1024 * 1024;
            // Frames queued between socket() and the filter: matched by tuple like the rest.
            return new SegmentCapture(socket, unparsed);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Starts keeping the segments of <paramref name="flows"/> (a flow watched already keeps what it has).</summary>
    public void Watch(IEnumerable<InboundFlow> flows)
    {
        lock (_flows)
        {
            foreach (var f in flows)
            {
                _flows.TryAdd(f, new CapturedFlow());
            }

            // Only the frames of flows watched or taken and not yet live wake this process (their port pairs, in the kernel):
            // a channel kept for several batches drops the pairs of flows gone live. Past the program's bound every TCP frame
            // does, as before. Frames queued under the old program are matched here as ever.
            var ports = _flows.Keys.Concat(_taken.Keys).Select(FlowFilter.PortWord).ToHashSet();
            try
            {
                if (ports.Count <= FlowFilter.MaxPortWords)
                {
                    Attach(_socket, FlowFilter.Program(ports));
                    return;
                }
            }
            catch (SocketException)
            {
                // A program the kernel refused (memory): the broad one below captures the same flows, at more cost.
            }

            AttachTcpFilter(_socket);
        }
    }

    /// <summary>What <paramref name="flow"/> captured so far; it stays watched (the restore's append; Go takes the rest).</summary>
    public IReadOnlyList<CapturedSegment> Peek(InboundFlow flow)
    {
        lock (_flows)
        {
            return _flows.TryGetValue(flow, out var f) ? [.. f.Segments] : [];
        }
    }

    /// <summary>Stops watching <paramref name="flow"/> and returns what it captured (none if it was not watched).</summary>
    public IReadOnlyList<CapturedSegment> Take(InboundFlow flow)
    {
        lock (_flows)
        {
            // What reached this node until now, even if the reader thread has not come to it: the mark follows at once.
            try
            {
                DrainLocked();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // The capture is closing: what it kept is all there is.
            }

            if (!_flows.Remove(flow, out var f))
            {
                return [];
            }

            _taken[flow] = 0;
            return f.Segments;
        }
    }

    /// <summary>
    /// The flow's socket takes its input from here on (marked): the segments with payload that arrived since
    /// <see cref="Take"/>, which the filter dropped and nothing appended (their end resends them on its timer).
    /// </summary>
    public int Live(InboundFlow flow)
    {
        lock (_flows)
        {
            return _taken.Remove(flow, out var late) ? late : 0;
        }
    }

    /// <summary>
    /// Frames the filter passed to this socket and those the kernel dropped for a full receive buffer, since
    /// the last call (PACKET_STATISTICS resets on read; struct tpacket_stats, include/uapi/linux/if_packet.h).
    /// A dropped frame of a moving flow is resent by its end on its timer: the pause it costs.
    /// </summary>
    public (long Frames, long Drops) Statistics()
    {
        Span<byte> stats = stackalloc byte[8];
        try
        {
            _socket.GetRawSocketOption(SOL_PACKET, PACKET_STATISTICS, stats);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return (0, 0);
        }

        // tp_packets counts the dropped frames too.
        long packets = BinaryPrimitives.ReadUInt32LittleEndian(stats), drops = BinaryPrimitives.ReadUInt32LittleEndian(stats[4..]);
        return (packets - drops, drops);
    }

    public void Dispose()
    {
        _socket.Dispose();
        lock (_flows)
        {
            _flows.Clear();
            _taken.Clear();
        }
    }

    /// <summary>
    /// ld proto; IPv4: ldb [9] == 6; IPv6: ldb [6] is TCP or an extension header that may precede it (hop-by-hop,
    /// routing, fragment, destination options; <see cref="TcpSegments"/> walks or counts them); ret whole or 0.
    /// Offsets from the network header (SOCK_DGRAM).
    /// </summary>
    private static void AttachTcpFilter(Socket socket) => Attach(socket,
        [
            Insn(0x28, 0, 0, 0xFFFFF000), // ld proto (SKF_AD_OFF + SKF_AD_PROTOCOL)
            Insn(0x15, 0, 2, 0x0800),
            Insn(0x30, 0, 0, 9),
            Insn(0x15, 7, 8, 6),
            Insn(0x15, 0, 7, 0x86DD),
            Insn(0x30, 0, 0, 6),
            Insn(0x15, 4, 0, 6),
            Insn(0x15, 3, 0, 0),
            Insn(0x15, 2, 0, 43),
            Insn(0x15, 1, 0, 44),
            Insn(0x15, 0, 1, 60),
            Insn(0x06, 0, 0, 0xFFFF),
            Insn(0x06, 0, 0, 0),
        ]);

    /// <summary>SO_ATTACH_FILTER: replaces the socket's program at once (frames already queued stay).</summary>
    private static unsafe void Attach(Socket socket, ReadOnlySpan<ulong> program)
    {
        fixed (ulong* filter = program)
        {
            // struct sock_fprog { unsigned short len; struct sock_filter *filter; }: the kernel copies the program.
            Span<byte> fprog = stackalloc byte[16];
            fprog.Clear();
            BinaryPrimitives.WriteUInt16LittleEndian(fprog, (ushort)program.Length);
            MemoryMarshal.Write(fprog[8..], (nint)filter);
            socket.SetRawSocketOption(SOL_SOCKET, SO_ATTACH_FILTER, fprog);
        }
    }

    private static ulong Insn(ushort code, byte jt, byte jf, uint k) => FlowFilter.Insn(code, jt, jf, k);

    private void Read()
    {
        while (true)
        {
            try
            {
                // Frames leave the socket only under the lock (here and in Take): none is ever read but not yet kept.
                if (_socket.Poll(200_000, SelectMode.SelectRead))
                {
                    // A few frames per hold of the lock: Watch and Take never wait behind a long queue.
                    bool more;
                    do
                    {
                        lock (_flows)
                        {
                            more = DrainLocked(ReaderBatch);
                        }
                    }
                    while (more);
                }
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock or SocketError.Interrupted or SocketError.NetworkDown)
            {
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Keeps up to <paramref name="max"/> frames queued on the socket (SIOCINQ of a packet socket: the next frame's
    /// length, 0 when none); true when it stopped at <paramref name="max"/> with frames left.
    /// </summary>
    private bool DrainLocked(int max = int.MaxValue)
    {
        for (var read = 0; _socket.Available > 0; read++)
        {
            if (read == max)
            {
                return true;
            }

            var n = _socket.Receive(_buffer);
            if (TcpSegments.TryParse(_buffer.AsSpan(0, n)) is not { } h)
            {
                _unparsed?.Invoke();
                continue;
            }

            if (h.PayloadLength > 0 && _taken.TryGetValue(h.Flow, out var late))
            {
                _taken[h.Flow] = late + 1;
            }
            else if (_flows.TryGetValue(h.Flow, out var f) && h.PayloadLength <= MaxBytesPerFlow)
            {
                f.Keep(new CapturedSegment(h.Seq, _buffer.AsSpan(h.PayloadOffset, h.PayloadLength).ToArray(), h.FinOrRst));
                _segments++;
            }
        }

        return false;
    }

}

/// <summary>
/// One watched flow's segments, the newest kept: past <see cref="SegmentCapture.MaxBytesPerFlow"/> or
/// <see cref="MaxSegments"/> the oldest go. What a restore appends starts at the old socket's rcv_nxt, i.e. at segments sent
/// after the drop, the newest; an older one the socket had already. An evicted segment the append needed leaves a gap:
/// the append stops there and the end resends the rest (docs/design.md#the-pause). Not thread-safe: under the capture's lock.
/// </summary>
internal sealed class CapturedFlow
{
    public const int MaxSegments = 512;

    private int _bytes;

    public List<CapturedSegment> Segments { get; } = [];

    /// <summary>Segments dropped from the front to make room.</summary>
    public int Evicted { get; private set; }

    public void Keep(CapturedSegment segment)
    {
        if (segment.Payload.Length > SegmentCapture.MaxBytesPerFlow)
        {
            return;
        }

        var drop = 0;
        var bytes = _bytes;
        while (drop < Segments.Count && (Segments.Count - drop >= MaxSegments || bytes + segment.Payload.Length > SegmentCapture.MaxBytesPerFlow))
        {
            bytes -= Segments[drop++].Payload.Length;
        }

        Segments.RemoveRange(0, drop);
        Evicted += drop;
        Segments.Add(segment);
        _bytes = bytes + segment.Payload.Length;
    }
}

/// <summary>
/// The capture's classic BPF program for a set of flows (docs/design.md#the-pause): TCP over IPv4 or IPv6 whose
/// source and destination ports (one 32-bit word of the TCP header) are a watched flow's; IPv6 with extension
/// headers passes whole (user space walks them). Addresses are matched in user space: a port pair of another
/// host passes the kernel and stops there. Pure.
/// </summary>
public static class FlowFilter
{
    /// <summary>Port pairs one program holds: two instructions each, within the kernel's 4,096 (BPF_MAXINSNS).</summary>
    public const int MaxPortWords = 2000;

    private const int Chain = 18;

    /// <summary>Source port and destination port as the TCP header holds them, one big-endian word.</summary>
    public static uint PortWord(InboundFlow flow) => ((uint)flow.SourcePort << 16) | flow.DestinationPort;

    /// <summary>The program: 18 instructions of header checks, a compare and a return per port pair, a final drop.</summary>
    public static ulong[] Program(IReadOnlyCollection<uint> portWords)
    {
        ArgumentNullException.ThrowIfNull(portWords);
        if (portWords.Count > MaxPortWords)
        {
            throw new ArgumentException($"at most {MaxPortWords} port pairs in one program", nameof(portWords));
        }

        var drop = (uint)(Chain + 1 + (2 * portWords.Count));
        var program = new List<ulong>((int)drop + 1)
        {
            Insn(0x28, 0, 0, 0xFFFFF000), // 0: ld proto (SKF_AD_OFF + SKF_AD_PROTOCOL)
            Insn(0x15, 0, 5, 0x0800), //     1: IPv4? else 7
            Insn(0x30, 0, 0, 9), //          2: ldb [9], the protocol
            Insn(0x15, 0, 2, 6), //          3: TCP? else 6
            Insn(0xB1, 0, 0, 0), //          4: ldxb 4*([0]&0xf), the header's length
            Insn(0x05, 0, 0, Chain - 6), //  5: ja chain
            Insn(0x05, 0, 0, drop - 7), //   6: ja drop
            Insn(0x15, 1, 0, 0x86DD), //     7: IPv6? else 8
            Insn(0x05, 0, 0, drop - 9), //   8: ja drop
            Insn(0x30, 0, 0, 6), //          9: ldb [6], the next header
            Insn(0x15, 6, 0, 6), //         10: TCP: 17
            Insn(0x15, 4, 0, 0), //         11: hop-by-hop, routing, fragment, destination options: 16 (whole)
            Insn(0x15, 3, 0, 43),
            Insn(0x15, 2, 0, 44),
            Insn(0x15, 1, 0, 60),
            Insn(0x05, 0, 0, drop - 16), // 15: ja drop
            Insn(0x06, 0, 0, 0xFFFF), //    16: ret whole
            Insn(0x01, 0, 0, 40), //        17: ldx #40
            Insn(0x40, 0, 0, 0), //         18: ld [x+0], the port pair
        };
        foreach (var word in portWords)
        {
            program.Add(Insn(0x15, 0, 1, word));
            program.Add(Insn(0x06, 0, 0, 0xFFFF));
        }

        program.Add(Insn(0x06, 0, 0, 0));
        return [.. program];
    }

    /// <summary>struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; } in host (little-endian) order.</summary>
    public static ulong Insn(ushort code, byte jt, byte jf, uint k) => code | ((ulong)jt << 16) | ((ulong)jf << 24) | ((ulong)k << 32);
}

/// <summary>What a captured packet says: its flow, sequence number, where its payload lies in the packet, and FIN or RST.</summary>
public readonly record struct TcpSegmentHeader(InboundFlow Flow, uint Seq, int PayloadOffset, int PayloadLength, bool FinOrRst);

/// <summary>Reads an IPv4 or IPv6 packet carrying TCP (IPv6: after hop-by-hop, routing and destination options headers; no fragment of either). Pure.</summary>
public static class TcpSegments
{
    /// <summary>IPv6 extension headers walked before TCP, at most: a longer chain is not read (RFC 8200 §4.1 orders at most a few).</summary>
    public const int MaxExtensionHeaders = 8;

    /// <summary>The TCP segment's header, or null when the packet is not a whole TCP segment.</summary>
    public static TcpSegmentHeader? TryParse(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < 20)
        {
            return null;
        }

        UInt128 source, destination;
        int at, end;
        if (packet[0] >> 4 == 4)
        {
            var headerLength = (packet[0] & 0x0F) * 4;
            var total = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
            // TCP, not a fragment (offset 0, no more fragments), lengths consistent.
            if (packet[9] != 6 || (BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x3FFF) != 0 || headerLength < 20 || total < headerLength || total > packet.Length)
            {
                return null;
            }

            source = InboundFlow.MappedV4(packet[12..16]);
            destination = InboundFlow.MappedV4(packet[16..20]);
            (at, end) = (headerLength, total);
        }
        else if (packet[0] >> 4 == 6 && packet.Length >= 40)
        {
            var total = 40 + BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
            if (total > packet.Length || SkipExtensionHeaders(packet[..total], packet[6]) is not { } tcpAt)
            {
                return null;
            }

            source = BinaryPrimitives.ReadUInt128BigEndian(packet[8..24]);
            destination = BinaryPrimitives.ReadUInt128BigEndian(packet[24..40]);
            (at, end) = (tcpAt, total);
        }
        else
        {
            return null;
        }

        var tcp = packet[at..end];
        var dataOffset = (tcp.Length < 20 ? 0 : tcp[12] >> 4) * 4;
        if (dataOffset < 20 || dataOffset > tcp.Length)
        {
            return null;
        }

        var flow = new InboundFlow(source, BinaryPrimitives.ReadUInt16BigEndian(tcp), destination, BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]));
        return new TcpSegmentHeader(flow, BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]), at + dataOffset, tcp.Length - dataOffset, (tcp[13] & 0x05) != 0);
    }

    /// <summary>
    /// Where TCP starts in an IPv6 packet whose first next header is <paramref name="next"/>: past hop-by-hop (0), routing (43) and
    /// destination options (60) headers, each (length + 1) × 8 bytes; null for a fragment (44), any other header, or a chain that overruns.
    /// </summary>
    private static int? SkipExtensionHeaders(ReadOnlySpan<byte> packet, byte next)
    {
        var at = 40;
        for (var i = 0; i <= MaxExtensionHeaders; i++)
        {
            if (next == 6)
            {
                return at <= packet.Length ? at : null;
            }
            if (next is not (0 or 43 or 60) || i == MaxExtensionHeaders || packet.Length < at + 2)
            {
                return null;
            }
            next = packet[at];
            at += (packet[at + 1] + 1) * 8;
        }
        return null;
    }
}
