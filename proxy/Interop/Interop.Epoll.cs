using System.Runtime.InteropServices;
using L2Balance.Common.Linux;

namespace L2Balance.Proxy.Interop;

internal static partial class Interop
{
    /// <summary>
    /// epoll(7) and non-blocking recvfrom(2)/sendto(2) for the UDP relay's own readiness loop
    /// (<see cref="Relay.UdpPoller"/>): sockets registered here for EPOLLIN only, never with the
    /// runtime's socket engine, which registers EPOLLIN|EPOLLOUT edge-triggered and so wakes once
    /// per datagram sent (the kernel signals write space each time a sent skb is freed).
    /// </summary>
    internal static partial class Epoll
    {
        internal const int EPOLL_CLOEXEC = 0x80000;
        internal const int EPOLL_CTL_ADD = 1;
        internal const int EPOLL_CTL_DEL = 2;
        internal const uint EPOLLIN = 0x001;
        internal const uint EPOLLERR = 0x008;
        internal const uint EPOLLHUP = 0x010;

        /// <summary>recv/send flag: fail with EAGAIN instead of blocking (linux/socket.h).</summary>
        internal const int MSG_DONTWAIT = 0x40;

        internal const int EINTR = 4;
        internal const int EAGAIN = 11;
        internal const int ECONNREFUSED = 111;

        /// <summary>
        /// sizeof(struct epoll_event) and offsetof(data): the struct is packed on x86-64 (12 bytes,
        /// data at 4), naturally aligned elsewhere (16 bytes, data at 8) — sys/epoll.h __EPOLL_PACKED.
        /// </summary>
        internal static readonly int EventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

        internal static readonly int EventDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int epoll_create1(int flags);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial int epoll_ctl(SafeHandle epfd, int op, SafeHandle fd, byte* @event);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial int epoll_wait(SafeHandle epfd, byte* events, int maxevents, int timeout);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial nint recvfrom(SafeHandle sockfd, byte* buf, nuint len, int flags, byte* src_addr, int* addrlen);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial nint sendto(SafeHandle sockfd, byte* buf, nuint len, int flags, byte* dest_addr, int addrlen);

        /// <summary>One datagram without blocking into <paramref name="buffer"/>, its source into
        /// <paramref name="from"/> (size set): the length, or -errno (-EAGAIN when none is queued).</summary>
        internal static unsafe long ReceiveFrom(SafeHandle socket, Span<byte> buffer, System.Net.SocketAddress from)
        {
            var address = from.Buffer.Span;
            fixed (byte* p = buffer)
            fixed (byte* a = address)
            {
                while (true)
                {
                    int addressLength = address.Length;
                    var n = recvfrom(socket, p, (nuint)buffer.Length, MSG_DONTWAIT, a, &addressLength);
                    if (n >= 0)
                    {
                        from.Size = Math.Min(addressLength, address.Length);
                        return n;
                    }
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno != EINTR)
                    {
                        return -errno;
                    }
                }
            }
        }

        /// <summary>Sends one datagram without blocking: the length sent, or -errno (-EAGAIN when the send buffer is full).</summary>
        internal static unsafe long SendTo(SafeHandle socket, ReadOnlySpan<byte> datagram, System.Net.SocketAddress to)
        {
            var address = to.Buffer.Span;
            fixed (byte* p = datagram)
            fixed (byte* a = address)
            {
                while (true)
                {
                    var n = sendto(socket, p, (nuint)datagram.Length, MSG_DONTWAIT, a, to.Size);
                    if (n >= 0)
                    {
                        return n;
                    }
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno != EINTR)
                    {
                        return -errno;
                    }
                }
            }
        }
    }
}

/// <summary>An epoll instance made by <see cref="Interop.Epoll.epoll_create1"/>; closes the descriptor (docs/conventions.md §10).</summary>
internal sealed class SafeEpollHandle : SafeHandle
{
    public SafeEpollHandle()
        : base(-1, ownsHandle: true)
    {
    }

    private SafeEpollHandle(int fd)
        : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle == -1;

    /// <summary>A close-on-exec epoll instance; throws <see cref="IOException"/> naming the call and errno.</summary>
    public static SafeEpollHandle Create()
    {
        var fd = Interop.Epoll.epoll_create1(Interop.Epoll.EPOLL_CLOEXEC);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"epoll_create1(EPOLL_CLOEXEC): {Errno.Name(errno)}");
        }
        return new SafeEpollHandle(fd);
    }

    protected override bool ReleaseHandle() => Interop.Splice.close((int)handle) == 0;
}
