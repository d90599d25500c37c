using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using static L2Balance.Balancer.Interop.Packet;

namespace L2Balance.Balancer;

/// <summary>
/// A packet socket's receive ring (PACKET_RX_RING, TPACKET_V2) mapped into this process: the
/// kernel copies each frame the socket takes into the next free slot and hands the slot over by its
/// status word, so user space takes frames from memory without a syscall per frame, and ppoll(2)
/// reports the socket readable while a handed-over slot waits. The mapping is the handle; releasing
/// it unmaps the ring. Not thread-safe: one reader (docs/design.md#advert-budget).
/// </summary>
internal sealed class PacketRxRing : SafeHandleZeroOrMinusOneIsInvalid
{
    private readonly nuint _length;
    private readonly int _frameSize;
    private readonly int _frameCount;
    private int _head;

    private PacketRxRing(nint address, TpacketReq geometry)
        : base(ownsHandle: true)
    {
        SetHandle(address);
        _length = (nuint)geometry.BlockSize * geometry.BlockCount;
        _frameSize = (int)geometry.FrameSize;
        _frameCount = (int)geometry.FrameCount;
    }

    /// <summary>Slots in the ring: frames the kernel can hold for the reader before it drops (counted in PACKET_STATISTICS).</summary>
    public int FrameCount => _frameCount;

    /// <summary>
    /// Gives <paramref name="socket"/> a TPACKET_V2 receive ring of <paramref name="geometry"/>
    /// (<see cref="Net.PacketStructs.RingGeometry"/>) and maps it. Before bind(2), so that no frame
    /// is queued anywhere but in the ring.
    /// </summary>
    /// <exception cref="IOException">A syscall failed; the message names it and its errno.</exception>
    public static unsafe PacketRxRing Map(SafeSocketHandle socket, TpacketReq geometry)
    {
        int version = TPACKET_V2;
        if (setsockopt(socket, SOL_PACKET, PACKET_VERSION, new ReadOnlySpan<byte>(&version, sizeof(int)), sizeof(int)) != 0)
        {
            throw new IOException($"setsockopt(PACKET_VERSION, TPACKET_V2): {Errno.Name(Marshal.GetLastPInvokeError())}");
        }

        if (setsockopt(socket, SOL_PACKET, PACKET_RX_RING, new ReadOnlySpan<byte>(&geometry, sizeof(TpacketReq)), sizeof(TpacketReq)) != 0)
        {
            throw new IOException($"setsockopt(PACKET_RX_RING, {geometry.FrameCount} frames of {geometry.FrameSize} bytes): {Errno.Name(Marshal.GetLastPInvokeError())}");
        }

        var address = mmap(0, (nuint)geometry.BlockSize * geometry.BlockCount, PROT_READ | PROT_WRITE, MAP_SHARED, socket, 0);
        if (address == -1)
        {
            throw new IOException($"mmap(PACKET_RX_RING, {(long)geometry.BlockSize * geometry.BlockCount} bytes): {Errno.Name(Marshal.GetLastPInvokeError())}");
        }

        return new PacketRxRing(address, geometry);
    }

    /// <summary>
    /// Copies the next frame the kernel handed over into <paramref name="destination"/> and gives its
    /// slot back; false when none waits. <paramref name="length"/> is what recv(2) would return: the
    /// frame's length, cut to the destination's. A frame longer than what was copied (than the
    /// destination or the slot) is reported as long as the destination, the rest zeroed: a caller
    /// whose buffer holds one byte more than it accepts thus refuses it as too long, never takes it cut.
    /// </summary>
    public unsafe bool TryTake(Span<byte> destination, out int length)
    {
        var added = false;
        try
        {
            DangerousAddRef(ref added);
            var slot = (byte*)handle + ((nint)_head * _frameSize);
            ref var status = ref *(uint*)(slot + TpStatusOffset);
            // Acquire: the kernel fills the slot, then sets the status (smp_wmb in __packet_set_status).
            if ((Volatile.Read(ref status) & TP_STATUS_USER) == 0)
            {
                length = 0;
                return false;
            }

            var wire = *(uint*)(slot + TpLenOffset);
            var mac = *(ushort*)(slot + TpMacOffset);
            // The kernel keeps tp_mac + tp_snaplen within the slot; clamped again so a bad header cannot reach past it.
            var held = Math.Min(*(uint*)(slot + TpSnaplenOffset), mac < _frameSize ? (uint)(_frameSize - mac) : 0);
            var copied = (int)Math.Min(Math.Min(held, wire), (uint)destination.Length);
            new ReadOnlySpan<byte>(slot + mac, copied).CopyTo(destination);
            length = copied;
            if (wire > (uint)copied)
            {
                destination[copied..].Clear();
                length = destination.Length;
            }

            // Release: the frame is read before the kernel may write the slot again.
            Volatile.Write(ref status, TP_STATUS_KERNEL);
            _head = _head + 1 == _frameCount ? 0 : _head + 1;
            return true;
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
    }

    protected override bool ReleaseHandle() => munmap(handle, _length) == 0;
}
