namespace L2Balance.Proxy.Interop;

internal static partial class Interop
{
    internal static class Libraries
    {
        internal const string Libc = "libc";

        /// <summary>MIT Kerberos GSS-API (Debian libgssapi-krb5-2), loaded on first use: only GSSAPI sessions need it.</summary>
        internal const string GssapiKrb5 = "libgssapi_krb5.so.2";
    }
}
