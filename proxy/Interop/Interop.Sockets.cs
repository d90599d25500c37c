using System.Runtime.InteropServices;

namespace L2Balance.Proxy.Interop;

internal static partial class Interop
{
    /// <summary>Socket calls the runtime wraps with side effects a caller must avoid.</summary>
    internal static partial class Sockets
    {
        internal const int EACCES = 13;
        internal const int EADDRINUSE = 98;

        /// <summary>bind(2) alone: Socket.Bind sets SO_REUSEADDR on a TCP socket first (docs/design.md#single-ip-mode).</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "bind", SetLastError = true)]
        internal static partial int bind(SafeHandle socket, ReadOnlySpan<byte> address, int addressLength);
    }
}
