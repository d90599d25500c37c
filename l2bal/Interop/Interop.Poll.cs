using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace L2Balance.Balancer;

internal static partial class Interop
{
    /// <summary>ppoll(2) and eventfd(2): the daemon's loop sleeps until a frame, a wake-up or its next deadline.</summary>
    internal static partial class Poll
    {
        /// <summary>poll.h: data to read.</summary>
        internal const short POLLIN = 0x001;

        /// <summary>sys/eventfd.h: EFD_CLOEXEC | EFD_NONBLOCK.</summary>
        internal const int EFD_CLOEXEC = 0x80000;
        internal const int EFD_NONBLOCK = 0x800;

        /// <summary>struct pollfd.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct PollFd
        {
            public int Fd;
            public short Events;
            public short Revents;
        }

        /// <summary>struct timespec (64-bit time_t).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct TimeSpec
        {
            public long Seconds;
            public long Nanoseconds;
        }

        [LibraryImport(Libraries.Libc, EntryPoint = "ppoll", SetLastError = true)]
        internal static unsafe partial int ppoll(PollFd* fds, nuint count, TimeSpec* timeout, nint sigmask);

        [LibraryImport(Libraries.Libc, EntryPoint = "eventfd", SetLastError = true)]
        internal static partial SafeFileHandle eventfd(uint initval, int flags);

        [LibraryImport(Libraries.Libc, EntryPoint = "write", SetLastError = true)]
        internal static unsafe partial nint write(SafeFileHandle fd, void* buffer, nuint count);

        [LibraryImport(Libraries.Libc, EntryPoint = "read", SetLastError = true)]
        internal static unsafe partial nint read(SafeFileHandle fd, void* buffer, nuint count);
    }
}
