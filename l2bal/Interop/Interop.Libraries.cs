namespace L2Balance.Balancer;

internal static partial class Interop
{
    /// <summary>Native library names (dotnet/runtime Interop.Libraries.cs style).</summary>
    internal static class Libraries
    {
        /// <summary>Debian's libnftables1. There is no unversioned libnftables.so without libnftables-dev.</summary>
        internal const string Nftables = "libnftables.so.1";

        internal const string Libc = "libc";
    }
}
