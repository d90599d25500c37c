using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using L2Balance.Balancer.Protocol;
using static L2Balance.Balancer.Interop.Packet;

namespace L2Balance.Balancer.Net;

/// <summary>
/// An AF_PACKET SOCK_RAW socket (packet(7)) bound to one interface and one EtherType, so the kernel
/// copies only that EtherType from that interface to user space: under load the VIP's data
/// frames never reach this process. Frames are whole Ethernet frames without FCS.
/// </summary>
/// <remarks>
/// The socket is created with protocol 0, which registers no receive hook at all, and gets its
/// EtherType only in bind(2): created with htons(type) it would queue that type from every
/// interface between socket() and bind(). Frames this host sends are never queued
/// (PACKET_IGNORE_OUTGOING, kernel 4.20+) and are dropped again by source MAC as a second guard.
/// </remarks>
internal sealed class PacketSocket : IDisposable
{
    private readonly Socket _socket;
    private readonly PacketRxRing? _ring;
    private long _ownFramesSkipped;
    private long _errors;
    private string? _lastError;

    private PacketSocket(Socket socket, PacketRxRing? ring, InterfaceInfo info, ushort etherType)
    {
        _socket = socket;
        _ring = ring;
        InterfaceName = info.Name;
        InterfaceIndex = info.Index;
        InterfaceMac = info.Mac;
        EtherType = etherType;
    }

    /// <summary>The bound interface's name.</summary>
    public string InterfaceName { get; }

    /// <summary>The bound interface's index (in the socket's network namespace).</summary>
    public int InterfaceIndex { get; }

    /// <summary>The bound interface's own MAC: the Ethernet source of everything sent here.</summary>
    public MacAddress InterfaceMac { get; }

    /// <summary>The one EtherType received.</summary>
    public ushort EtherType { get; }

    /// <summary>Slots of the receive ring (<see cref="OpenWithRing"/>), 0 without one.</summary>
    public int RingFrames => _ring?.FrameCount ?? 0;

    /// <summary>The socket's handle, for a caller that waits on it with poll(2).</summary>
    public SafeSocketHandle Handle => _socket.SafeHandle;

    /// <summary>Frames received whose source was <see cref="InterfaceMac"/> and were skipped.</summary>
    public long OwnFramesSkipped => Interlocked.Read(ref _ownFramesSkipped);

    /// <summary>
    /// Errors a receive returned instead of a frame: ENETDOWN once each time the interface goes down
    /// on this node (the kernel then unhooks the socket and hooks it again when the interface comes
    /// back up), anything else the kernel reports. Each is counted and the socket stays usable.
    /// </summary>
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>The last of <see cref="Errors"/>, as "recv(AF_PACKET, eth0): ENETDOWN", or null.</summary>
    public string? LastError => Volatile.Read(ref _lastError);

    /// <summary>
    /// Opens a socket on <paramref name="interfaceName"/> receiving only <paramref name="etherType"/>,
    /// in the network namespace of the calling thread. Needs CAP_NET_RAW.
    /// </summary>
    /// <exception cref="InterfaceNotFoundException">No such interface.</exception>
    /// <exception cref="IOException">A syscall failed; the message names it and its errno.</exception>
    public static PacketSocket Open(string interfaceName, ushort etherType)
    {
        if (etherType < 0x0600)
        {
            throw new ArgumentOutOfRangeException(nameof(etherType), "An Ethernet II type is at least 0x0600.");
        }

        return Open(interfaceName, etherType, program: [], ring: null);
    }

    /// <summary>
    /// As <see cref="Open(string, ushort)"/>, with a receive ring (PACKET_RX_RING, TPACKET_V2) of
    /// about <paramref name="ringBytes"/> whose slots hold frames of up to
    /// <paramref name="maximumFrameLength"/> bytes: <see cref="TryReceive"/> then takes frames from
    /// memory, without a syscall per frame, and the ring, not the socket's receive buffer, holds
    /// what waits (docs/design.md#advert-budget).
    /// </summary>
    public static PacketSocket OpenWithRing(string interfaceName, ushort etherType, int maximumFrameLength, int ringBytes)
    {
        if (etherType < 0x0600)
        {
            throw new ArgumentOutOfRangeException(nameof(etherType), "An Ethernet II type is at least 0x0600.");
        }

        return Open(interfaceName, etherType, program: [], PacketStructs.RingGeometry(maximumFrameLength, ringBytes, Environment.SystemPageSize));
    }

    /// <summary>
    /// Opens a socket on <paramref name="interfaceName"/> that receives only frames whose Ethernet
    /// source is <paramref name="source"/>, of any EtherType, and only their first 64 bytes: a
    /// classic BPF filter decides in the kernel, so the VIP's data frames cost the node one filter
    /// run each and never reach user space. For noticing frames another host sends from the
    /// cluster MAC (docs/design.md#spoofing). Needs CAP_NET_RAW.
    /// </summary>
    public static PacketSocket OpenSourceWatch(string interfaceName, MacAddress source)
    {
        var high = (uint)(source.Value >> 32);
        var low = (uint)source.Value;
        // ldh [6]; jeq #high, 0, 3; ld [8]; jeq #low, 0, 1; ret #64; ret #0 (linux/filter.h, bpf(4) style)
        SockFilter[] program =
        [
            new(BPF_LD_H_ABS, 0, 0, 6),
            new(BPF_JMP_JEQ_K, 0, 3, high),
            new(BPF_LD_W_ABS, 0, 0, 8),
            new(BPF_JMP_JEQ_K, 0, 1, low),
            new(BPF_RET_K, 0, 0, 64),
            new(BPF_RET_K, 0, 0, 0),
        ];
        return Open(interfaceName, ETH_P_ALL, program, ring: null);
    }

    /// <summary>
    /// Opens a socket on <paramref name="interfaceName"/> that receives only ICMPv6 neighbour
    /// solicitations and advertisements carried directly after the IPv6 header (next header 58,
    /// type 135 or 136: ND never uses extension headers), whole: a classic BPF filter decides in
    /// the kernel, so the IPv6 VIP's data frames never reach user space (docs/design.md#ndp). Needs CAP_NET_RAW.
    /// </summary>
    public static PacketSocket OpenNeighborDiscovery(string interfaceName)
    {
        // ldb [20]; jeq #58, 0, 4; ldb [54]; jeq #135, 1, 0; jeq #136, 0, 1; ret #65535; ret #0
        SockFilter[] program =
        [
            new(BPF_LD_B_ABS, 0, 0, 14 + 6),
            new(BPF_JMP_JEQ_K, 0, 4, 58),
            new(BPF_LD_B_ABS, 0, 0, 14 + 40),
            new(BPF_JMP_JEQ_K, 1, 0, 135),
            new(BPF_JMP_JEQ_K, 0, 1, 136),
            new(BPF_RET_K, 0, 0, 65535),
            new(BPF_RET_K, 0, 0, 0),
        ];
        return Open(interfaceName, NeighborPacket.EtherTypeIPv6, program, ring: null);
    }

    private static PacketSocket Open(string interfaceName, ushort etherType, ReadOnlySpan<SockFilter> program, TpacketReq? ring)
    {
        PacketStructs.ValidateInterfaceName(interfaceName);
        Socket socket;
        try
        {
            socket = new Socket(AddressFamily.Packet, SocketType.Raw, ProtocolType.Unspecified);
        }
        catch (SocketException ex)
        {
            throw new IOException($"socket(AF_PACKET, SOCK_RAW): {ex.SocketErrorCode}", ex);
        }

        PacketRxRing? rxRing = null;
        try
        {
            var info = InterfaceInfo.Lookup(socket.SafeHandle, interfaceName);
            // Before bind, which hooks the socket: no frame is queued that the filter would refuse.
            if (program.Length > 0 && AttachFilter(socket.SafeHandle, program) != 0)
            {
                throw new IOException($"setsockopt(SO_ATTACH_FILTER): {Errno.Name(Marshal.GetLastPInvokeError())}");
            }

            SetOption(socket, PACKET_IGNORE_OUTGOING, "PACKET_IGNORE_OUTGOING", BitConverter.GetBytes(1));
            // Before bind too: every frame the socket ever takes goes to the ring.
            rxRing = ring is { } geometry ? PacketRxRing.Map(socket.SafeHandle, geometry) : null;
            Bind(socket, etherType, info.Index);
            return new PacketSocket(socket, rxRing, info, etherType);
        }
        catch
        {
            rxRing?.Dispose();
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Adds <paramref name="mac"/> to the interface's receive filter for as long as this socket lives
    /// (the kernel drops the membership when the socket closes, so it is tied to the daemon's
    /// life): PACKET_MR_MULTICAST for a group address, PACKET_MR_UNICAST for a unicast one. On an
    /// interface without a unicast filter (veth), the kernel raises promiscuity instead.
    /// </summary>
    public void AddMembership(MacAddress mac) =>
        Membership(PACKET_ADD_MEMBERSHIP, "PACKET_ADD_MEMBERSHIP", mac);

    /// <summary>Undoes one <see cref="AddMembership"/>.</summary>
    public void DropMembership(MacAddress mac) =>
        Membership(PACKET_DROP_MEMBERSHIP, "PACKET_DROP_MEMBERSHIP", mac);

    /// <summary>
    /// Receives the next frame not sent by this host into <paramref name="frame"/>; returns its
    /// length. A frame longer than the buffer is cut to the buffer's length.
    /// </summary>
    /// <exception cref="IOException">The kernel returned an error instead of a frame (counted in <see cref="Errors"/>); the socket stays usable.</exception>
    public async ValueTask<int> ReceiveAsync(Memory<byte> frame, CancellationToken cancellationToken)
    {
        while (true)
        {
            int n;
            try
            {
                n = await _socket.ReceiveAsync(frame, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                throw new IOException(NoteError(ex.SocketErrorCode.ToString()), ex);
            }

            if (n >= 2 * MacAddress.Length && MacAddress.Read(frame.Span[MacAddress.Length..]) == InterfaceMac)
            {
                Interlocked.Increment(ref _ownFramesSkipped);
                continue;
            }

            return n;
        }
    }

    /// <summary>
    /// Receives the next queued frame not sent by this host without waiting into
    /// <paramref name="frame"/>; returns its length, or 0 when nothing is queued. A frame longer
    /// than the buffer is reported with the buffer's length. For a caller that polls on its own
    /// schedule (the daemon's loop).
    /// </summary>
    /// <remarks>
    /// With a ring (<see cref="OpenWithRing"/>) frames are copied from it, no syscall each; once it
    /// is empty, and without a ring for every frame, one non-blocking recv(2). That recv also takes
    /// an error the socket holds (ENETDOWN when the interface went down on this node), which makes
    /// poll(2) report the socket ready until a receive takes it: it is counted in
    /// <see cref="Errors"/> and 0 returned, so a caller sleeping in poll on this socket does not
    /// spin while the interface is down.
    /// </remarks>
    public int TryReceive(Span<byte> frame)
    {
        while (true)
        {
            if (_ring is null || !_ring.TryTake(frame, out var n))
            {
                n = (int)recv(_socket.SafeHandle, frame, (nuint)frame.Length, MSG_DONTWAIT);
                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == Errno.EINTR)
                    {
                        continue;
                    }

                    if (errno != Errno.EAGAIN)
                    {
                        NoteError(Errno.Name(errno));
                    }

                    return 0;
                }
            }

            if (n >= 2 * MacAddress.Length && MacAddress.Read(frame[MacAddress.Length..]) == InterfaceMac)
            {
                Interlocked.Increment(ref _ownFramesSkipped);
                continue;
            }

            return n;
        }
    }

    /// <summary>
    /// Frames the kernel dropped because the receive buffer (or the ring) was full since the last
    /// call (PACKET_STATISTICS, which resets on read), or 0 if it cannot be read.
    /// </summary>
    public long TakeKernelDrops()
    {
        Span<byte> stats = stackalloc byte[SizeOfTpacketStats];
        var length = SizeOfTpacketStats;
        return getsockopt(_socket.SafeHandle, SOL_PACKET, PACKET_STATISTICS, stats, ref length) == 0 && length == SizeOfTpacketStats
            ? MemoryMarshal.Read<uint>(stats[4..])
            : 0;
    }

    /// <summary>Sends one whole Ethernet frame on the bound interface.</summary>
    /// <exception cref="IOException">send(2) failed or sent a partial frame.</exception>
    public void Send(ReadOnlySpan<byte> frame)
    {
        int sent;
        try
        {
            sent = _socket.Send(frame, SocketFlags.None);
        }
        catch (SocketException ex)
        {
            throw new IOException($"send(AF_PACKET, {InterfaceName}): {ex.SocketErrorCode}", ex);
        }

        if (sent != frame.Length)
        {
            throw new IOException($"send(AF_PACKET, {InterfaceName}): sent {sent} of {frame.Length} bytes");
        }
    }

    public void Dispose()
    {
        _ring?.Dispose();
        _socket.Dispose();
    }

    private string NoteError(string error)
    {
        var message = $"recv(AF_PACKET, {InterfaceName}): {error}";
        Volatile.Write(ref _lastError, message);
        Interlocked.Increment(ref _errors);
        return message;
    }

    private void Membership(int option, string optionName, MacAddress mac)
    {
        Span<byte> mreq = stackalloc byte[SizeOfPacketMreq];
        PacketStructs.WritePacketMreq(mreq, InterfaceIndex, mac.IsMulticast ? PACKET_MR_MULTICAST : PACKET_MR_UNICAST, mac);
        SetOption(_socket, option, optionName, mreq);
    }

    private static void SetOption(Socket socket, int option, string optionName, ReadOnlySpan<byte> value)
    {
        if (setsockopt(socket.SafeHandle, SOL_PACKET, option, value, value.Length) != 0)
        {
            throw new IOException($"setsockopt({optionName}): {Errno.Name(Marshal.GetLastPInvokeError())}");
        }
    }

    private static void Bind(Socket socket, ushort etherType, int interfaceIndex)
    {
        // .NET accepts any EndPoint whose Serialize() yields the raw sockaddr bytes, so bind goes
        // through Socket.Bind (keeping the Socket's own bookkeeping) with no P/Invoke.
        try
        {
            socket.Bind(new LinkLayerEndPoint(etherType, interfaceIndex));
        }
        catch (SocketException ex)
        {
            throw new IOException($"bind(AF_PACKET, ifindex {interfaceIndex}, 0x{etherType:x4}): {ex.SocketErrorCode}", ex);
        }
    }

    /// <summary>A sockaddr_ll as a .NET <see cref="EndPoint"/>.</summary>
    private sealed class LinkLayerEndPoint(ushort etherType, int interfaceIndex) : EndPoint
    {
        public override AddressFamily AddressFamily => AddressFamily.Packet;

        public override SocketAddress Serialize()
        {
            var address = new SocketAddress(AddressFamily.Packet, SizeOfSockaddrLl);
            PacketStructs.WriteSockaddrLl(address.Buffer.Span, etherType, interfaceIndex);
            return address;
        }

        public override EndPoint Create(SocketAddress socketAddress) => this;
    }
}
