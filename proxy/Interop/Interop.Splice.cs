using System.Runtime.InteropServices;
using L2Balance.Common.Linux;

namespace L2Balance.Proxy.Interop;

internal static partial class Interop
{
    /// <summary>splice(2), pipe2(2), read(2) and fcntl(F_SETPIPE_SZ) for the zero-copy TCP relay.</summary>
    internal static partial class Splice
    {
        /// <summary>Move pages instead of copying, where the kernel can (a hint; linux/splice.h).</summary>
        internal const uint SPLICE_F_MOVE = 1;

        /// <summary>Do not block on the pipe (the sockets are non-blocking already: .NET sets O_NONBLOCK).</summary>
        internal const uint SPLICE_F_NONBLOCK = 2;

        /// <summary>More data will follow in a later splice (like MSG_MORE).</summary>
        internal const uint SPLICE_F_MORE = 4;

        internal const int O_NONBLOCK = 0x800;
        internal const int O_CLOEXEC = 0x80000;
        internal const int F_SETPIPE_SZ = 1031;

        internal const int EAGAIN = 11;
        internal const int EINTR = 4;
        internal const int EBADF = 9;
        internal const int EPIPE = 32;
        internal const int EINVAL = 22;
        internal const int ENOSYS = 38;
        internal const int ECONNRESET = 104;
        internal const int ECONNABORTED = 103;
        internal const int ETIMEDOUT = 110;
        internal const int ENOTCONN = 107;
        internal const int EHOSTUNREACH = 113;
        internal const int ENETUNREACH = 101;

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial nint splice(SafeHandle fd_in, nint off_in, SafeHandle fd_out, nint off_out, nuint len, uint flags);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial int pipe2(int* pipefd, int flags);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial nint read(SafeHandle fd, byte* buf, nuint count);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int fcntl(SafeHandle fd, int cmd, int arg);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int close(int fd);

        /// <summary>Moves up to <paramref name="length"/> bytes from <paramref name="from"/> to <paramref name="to"/>
        /// (one of them a pipe) without blocking. Returns the count, 0 at EOF, or -errno.</summary>
        internal static long Move(SafeHandle from, SafeHandle to, int length, bool more)
        {
            while (true)
            {
                var moved = splice(from, 0, to, 0, (nuint)length, SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (more ? SPLICE_F_MORE : 0));
                if (moved >= 0)
                {
                    return moved;
                }
                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR)
                {
                    return -errno;
                }
            }
        }

        internal const int MSG_DONTWAIT = 0x40;
        internal const int MSG_NOSIGNAL = 0x4000;

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial nint send(SafeHandle sockfd, byte* buf, nuint len, int flags);

        /// <summary>Sends what the socket takes now, without blocking: count or -errno (EAGAIN when its buffer is full).</summary>
        internal static unsafe long Send(SafeHandle socket, ReadOnlySpan<byte> buffer)
        {
            fixed (byte* p = buffer)
            {
                while (true)
                {
                    var n = send(socket, p, (nuint)buffer.Length, MSG_DONTWAIT | MSG_NOSIGNAL);
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

        /// <summary>Reads at most <paramref name="buffer"/>'s length from a pipe without blocking: count or -errno.</summary>
        internal static unsafe long Read(SafeHandle pipe, Span<byte> buffer)
        {
            fixed (byte* p = buffer)
            {
                while (true)
                {
                    var n = read(pipe, p, (nuint)buffer.Length);
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

/// <summary>One end of a pipe made by <see cref="Interop.Splice.pipe2"/>; closes the descriptor (docs/conventions.md §10).</summary>
internal sealed class SafePipeHandle : SafeHandle
{
    public SafePipeHandle()
        : base(-1, ownsHandle: true)
    {
    }

    private SafePipeHandle(int fd)
        : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle == -1;

    /// <summary>
    /// A non-blocking, close-on-exec pipe: (read end, write end). Throws
    /// <see cref="IOException"/> naming the call and errno (EMFILE when out of descriptors).
    /// </summary>
    public static unsafe (SafePipeHandle Read, SafePipeHandle Write) Create()
    {
        int* fds = stackalloc int[2];
        if (Interop.Splice.pipe2(fds, Interop.Splice.O_NONBLOCK | Interop.Splice.O_CLOEXEC) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"pipe2(O_NONBLOCK|O_CLOEXEC): {Errno.Name(errno)}");
        }
        return (new SafePipeHandle(fds[0]), new SafePipeHandle(fds[1]));
    }

    protected override bool ReleaseHandle() => Interop.Splice.close((int)handle) == 0;
}
