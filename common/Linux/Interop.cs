using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace L2Balance.Common.Linux;

/// <summary>The libc calls of the shared library (dotnet/runtime Interop.Sys naming).</summary>
internal static partial class Interop
{
    /// <summary>linux/sched.h: the network namespace type for setns(2).</summary>
    internal const int CLONE_NEWNET = 0x40000000;

    /// <summary>setns(2): moves the calling thread into the namespace referred to by fd.</summary>
    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    internal static partial int setns(SafeFileHandle fd, int nstype);
}
