using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Net;

/// <summary>One advertisement frame as received: its payload (unparsed) and Ethernet source.</summary>
internal readonly record struct AdvertFrame(MacAddress Source, byte[] Payload);

/// <summary>Why a received advertisement frame was dropped before reaching the verifier.</summary>
internal enum AdvertFrameDrop
{
    /// <summary>Not an untagged Ethernet II frame of our EtherType.</summary>
    BadEthernet,

    /// <summary>Payload shorter than <see cref="AdvertChannel.MinimumPayloadLength"/>.</summary>
    Short,

    /// <summary>Payload longer than the channel's maximum.</summary>
    Oversize,

    /// <summary>Ethernet source is this node's own MAC.</summary>
    FromSelf,
}

/// <summary>
/// Membership advertisements as raw Ethernet frames, EtherType 0x88B5 (IEEE 802 "local
/// experimental 1"), broadcast, Ethernet source = own MAC. Payloads are opaque here: the daemon's
/// AdvertVerifier checks them (docs/conventions.md §20). The daemon's loop takes received frames with
/// <see cref="TryReceive(Span{byte}, out MacAddress)"/> on its own schedule, so there is no receive task of its own.
/// </summary>
internal sealed class AdvertChannel : IAsyncDisposable
{
    /// <summary>IEEE Std 802 local experimental EtherType 1.</summary>
    public const ushort EtherType = 0x88B5;

    /// <summary>
    /// 60-byte minimum frame minus the header: shorter payloads would arrive zero-padded by the NIC
    /// and could not be told from their padding (an advert is 100 bytes).
    /// </summary>
    public const int MinimumPayloadLength = EthernetFrame.MinimumLength - EthernetFrame.HeaderLength;

    /// <summary>Ethernet MTU.</summary>
    public const int DefaultMaximumPayloadLength = 1500;

    /// <summary>
    /// The receive ring's size: 4096 slots of 2 KiB for frames of up to 1,515 bytes, so a flood the
    /// loop outpaces never pushes a peer's advert out while the loop is busy elsewhere for a few
    /// milliseconds; as much memory as the 4 MiB receive buffer it replaces could take (the kernel
    /// doubles that figure), and the frames are taken without a syscall each (docs/design.md#advert-budget).
    /// </summary>
    public const int RingBytes = 8 << 20;

    private readonly PacketSocket _socket;
    private readonly int _maximumPayloadLength;
    private readonly long[] _dropped = new long[Enum.GetValues<AdvertFrameDrop>().Length];
    private int _disposed;
    private long _sent;
    private long _receivedCount;
    private long _kernelDrops;

    private AdvertChannel(PacketSocket socket, int maximumPayloadLength)
    {
        _socket = socket;
        _maximumPayloadLength = maximumPayloadLength;
    }

    /// <summary>The socket's handle, for the daemon's loop to wait on.</summary>
    public System.Net.Sockets.SafeSocketHandle Handle => _socket.Handle;

    /// <summary>Opens the channel on <paramref name="interfaceName"/> in the calling thread's network namespace.</summary>
    public static AdvertChannel Open(string interfaceName, int maximumPayloadLength = DefaultMaximumPayloadLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maximumPayloadLength, MinimumPayloadLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maximumPayloadLength, DefaultMaximumPayloadLength);
        var socket = PacketSocket.OpenWithRing(interfaceName, EtherType, FrameBufferLengthFor(maximumPayloadLength), RingBytes);
        return new AdvertChannel(socket, maximumPayloadLength);
    }

    /// <summary>Frames the kernel dropped with the ring full (PACKET_STATISTICS), as of the last <see cref="ReadKernelDrops"/>.</summary>
    public long KernelDrops => Interlocked.Read(ref _kernelDrops);

    /// <summary>Adds the kernel's drops since the last call to <see cref="KernelDrops"/> (loop thread); returns the total.</summary>
    public long ReadKernelDrops() => Interlocked.Add(ref _kernelDrops, _socket.TakeKernelDrops());

    /// <summary>This node's MAC, the Ethernet source of what it sends.</summary>
    public MacAddress OwnMac => _socket.InterfaceMac;

    /// <summary>Frames sent.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Frames handed out by <see cref="TryReceive(Span{byte}, out MacAddress)"/>.</summary>
    public long Received => Interlocked.Read(ref _receivedCount);

    /// <summary>Errors the socket returned instead of a frame (ENETDOWN with the interface down; <see cref="PacketSocket.Errors"/>).</summary>
    public long SocketErrors => _socket.Errors;

    /// <summary>The last of <see cref="SocketErrors"/>, or null.</summary>
    public string? LastSocketError => _socket.LastError;

    /// <summary>Frames dropped for <paramref name="reason"/>.</summary>
    public long Dropped(AdvertFrameDrop reason) =>
        reason == AdvertFrameDrop.FromSelf
            ? Interlocked.Read(ref _dropped[(int)reason]) + _socket.OwnFramesSkipped
            : Interlocked.Read(ref _dropped[(int)reason]);

    /// <summary>Broadcasts one payload.</summary>
    /// <exception cref="ArgumentException">Shorter than <see cref="MinimumPayloadLength"/> or longer than the maximum.</exception>
    /// <exception cref="IOException">The kernel refused the frame.</exception>
    public void Send(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < MinimumPayloadLength || payload.Length > _maximumPayloadLength)
        {
            throw new ArgumentException(
                $"An advert payload has {MinimumPayloadLength}..{_maximumPayloadLength} bytes, not {payload.Length}.", nameof(payload));
        }

        Span<byte> frame = stackalloc byte[EthernetFrame.HeaderLength + payload.Length];
        EthernetFrame.Write(new EthernetHeader(MacAddress.Broadcast, OwnMac, EtherType), frame);
        payload.CopyTo(frame[EthernetFrame.HeaderLength..]);
        _socket.Send(frame);
        Interlocked.Increment(ref _sent);
    }

    /// <summary>
    /// Takes the next queued advert without waiting: the frames that arrived while the caller
    /// slept are read at once, so a late caller never mistakes its own delay for a silent peer.
    /// </summary>
    public bool TryReceive(out AdvertFrame advert)
    {
        Span<byte> buffer = stackalloc byte[FrameBufferLength];
        var length = TryReceive(buffer, out var source);
        advert = length == 0 ? default : new AdvertFrame(source, buffer.Slice(EthernetFrame.HeaderLength, length).ToArray());
        return length > 0;
    }

    /// <summary>The buffer <see cref="TryReceive(Span{byte}, out MacAddress)"/> needs: a whole frame and one byte to tell an oversize one.</summary>
    public int FrameBufferLength => FrameBufferLengthFor(_maximumPayloadLength);

    /// <summary>Frames the ring holds before the kernel drops (counted in <see cref="KernelDrops"/>).</summary>
    public int RingFrames => _socket.RingFrames;

    /// <summary>
    /// As <see cref="TryReceive(out AdvertFrame)"/> without copying: the next advert's frame is left in
    /// <paramref name="frame"/> (at least <see cref="FrameBufferLength"/> bytes), its payload after
    /// the Ethernet header; returns the payload's length, 0 when nothing is queued.
    /// </summary>
    public int TryReceive(Span<byte> frame, out MacAddress source)
    {
        while (true)
        {
            int n = _socket.TryReceive(frame);
            if (n == 0)
            {
                source = default;
                return 0;
            }

            if (Classify(frame[..n], out var header) is { } reason)
            {
                Interlocked.Increment(ref _dropped[(int)reason]);
                continue;
            }

            Interlocked.Increment(ref _receivedCount);
            source = header.Source;
            return n - EthernetFrame.HeaderLength;
        }
    }

    private static int FrameBufferLengthFor(int maximumPayloadLength) => EthernetFrame.HeaderLength + maximumPayloadLength + 1;

    /// <summary>Decides what to do with one received frame; null means deliver.</summary>
    internal AdvertFrameDrop? Classify(ReadOnlySpan<byte> frame, out EthernetHeader header)
    {
        if (!EthernetFrame.TryParse(frame, out header, out _) || header.EtherType != EtherType)
        {
            return AdvertFrameDrop.BadEthernet;
        }

        if (header.Source == OwnMac)
        {
            return AdvertFrameDrop.FromSelf;
        }

        int payloadLength = frame.Length - EthernetFrame.HeaderLength;
        if (payloadLength < MinimumPayloadLength)
        {
            return AdvertFrameDrop.Short;
        }

        return payloadLength > _maximumPayloadLength ? AdvertFrameDrop.Oversize : null;
    }

    /// <summary>Closes the socket (dropping its memberships). Never throws.</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _socket.Dispose();
        }

        return ValueTask.CompletedTask;
    }
}
