using System.Runtime.InteropServices;

namespace L2Balance.Proxy.Interop;

internal static partial class Interop
{
    /// <summary>socketpair(2) and fcntl(F_SETFD) for the supervisor's message channel to each worker.</summary>
    internal static partial class WorkerChannel
    {
        internal const int AF_UNIX = 1;
        internal const int SOCK_STREAM = 1;
        internal const int SOCK_CLOEXEC = 0x80000;
        internal const int F_SETFD = 2;
        internal const int FD_CLOEXEC = 1;

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int socketpair(int domain, int type, int protocol, Span<int> sv);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int fcntl(int fd, int cmd, int arg);
    }
}
