using System.Runtime.InteropServices;

namespace L2Balance.Balancer;

internal static partial class Interop
{
    /// <summary>capget(2), capset(2) and prctl(2)'s ambient set: capabilities are per thread on Linux.</summary>
    internal static partial class Capabilities
    {
        /// <summary>linux/capability.h: _LINUX_CAPABILITY_VERSION_3 (two 32-bit words per set).</summary>
        internal const uint _LINUX_CAPABILITY_VERSION_3 = 0x20080522;

        /// <summary>linux/prctl.h: PR_CAP_AMBIENT and its PR_CAP_AMBIENT_CLEAR_ALL.</summary>
        internal const int PR_CAP_AMBIENT = 47;
        internal const nuint PR_CAP_AMBIENT_CLEAR_ALL = 4;

        /// <summary>struct __user_cap_header_struct.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct cap_user_header
        {
            public uint version;
            public int pid;
        }

        /// <summary>struct __user_cap_data_struct (two of them for version 3).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct cap_user_data
        {
            public uint effective;
            public uint permitted;
            public uint inheritable;
        }

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial int capget(cap_user_header* header, cap_user_data* data);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial int capset(cap_user_header* header, cap_user_data* data);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
    }
}
