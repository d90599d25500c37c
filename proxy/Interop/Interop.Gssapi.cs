using System.Runtime.InteropServices;

namespace L2Balance.Proxy.Interop;

internal static partial class Interop
{
    /// <summary>
    /// The acceptor side of the GSS-API C bindings (RFC 2744) in MIT Kerberos, plus its credential store
    /// extension <c>gss_acquire_cred_from</c>: the only calls RFC 1961 needs on the server.
    /// </summary>
    internal static unsafe partial class Gssapi
    {
        internal const uint Complete = 0;
        internal const uint ContinueNeeded = 1;
        internal const uint Indefinite = uint.MaxValue;
        internal const int CredAccept = 2;

        /// <summary>GSS_S_DUPLICATE_TOKEN, GSS_S_OLD_TOKEN: supplementary bits a replayed or stale per-message token sets.</summary>
        internal const uint DuplicateToken = 1 << 1;
        internal const uint OldToken = 1 << 2;

        /// <summary>The calling and routine error bits of a major status (RFC 2744 section 3.9.1).</summary>
        internal const uint ErrorMask = 0xFFFF0000;

        internal const uint StatusTypeGss = 1;
        internal const uint StatusTypeMech = 2;

        internal const uint IntegFlag = 32;
        internal const uint ConfFlag = 16;

        [StructLayout(LayoutKind.Sequential)]
        internal struct Buffer
        {
            public nuint Length;
            public byte* Value;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct Oid
        {
            public uint Length;
            public byte* Elements;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct KeyValue
        {
            public byte* Key;
            public byte* Value;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct KeyValueSet
        {
            public uint Count;
            public KeyValue* Elements;
        }

        [LibraryImport(Libraries.GssapiKrb5, EntryPoint = "gss_import_name")]
        internal static partial uint ImportName(out uint minor, Buffer* name, Oid* nameType, out IntPtr output);

        [LibraryImport(Libraries.GssapiKrb5, EntryPoint = "gss_release_name")]
        internal static partial uint ReleaseName(out uint minor, ref IntPtr name);

        [LibraryImport(Libraries.GssapiKrb5, EntryPoint = "gss_acquire_cred_from")]
        internal static partial uint AcquireCredFrom(
            out uint minor, IntPtr desiredName, uint timeReq, IntPtr desiredMechs, int usage, KeyValueSet* store,
            out IntPtr credential, IntPtr actualMechs, IntPtr timeRec);

        [LibraryImport(Libraries.GssapiKrb5, EntryPoint = "gss_release_cred")]
        internal static partial uint ReleaseCred(out uint minor, ref IntPtr credential);

        [LibraryImport(Libraries.GssapiKrb5, EntryPoint = "gss_accept_sec_context")]
        internal static partial uint AcceptSecContext(
            out uint minor, ref IntPtr context, IntPtr credential, Buffer* input, IntPtr bindings, out IntPtr sourceName,
            IntPtr mechType, Buffer* output, out uint flags, IntPtr timeRec, IntPtr delegated);

        [LibraryImport(Libraries.GssapiKrb5, EntryPoint = "gss_delete_sec_context")]
        internal static partial uint DeleteSecContext(out uint minor, ref IntPtr context, IntPtr output);

        [LibraryImport(Libraries.GssapiKrb5, EntryPoint = "gss_display_name")]
        internal static partial uint DisplayName(out uint minor, IntPtr name, Buffer* output, IntPtr nameType);

        [LibraryImport(Libraries.GssapiKrb5, EntryPoint = "gss_display_status")]
        internal static partial uint DisplayStatus(out uint minor, uint status, int statusType, IntPtr mechType, ref uint messageContext, Buffer* output);

        [LibraryImport(Libraries.GssapiKrb5, EntryPoint = "gss_wrap")]
        internal static partial uint Wrap(out uint minor, IntPtr context, int confidential, uint qop, Buffer* input, out int confState, Buffer* output);

        [LibraryImport(Libraries.GssapiKrb5, EntryPoint = "gss_unwrap")]
        internal static partial uint Unwrap(out uint minor, IntPtr context, Buffer* input, Buffer* output, out int confState, out uint qop);

        [LibraryImport(Libraries.GssapiKrb5, EntryPoint = "gss_release_buffer")]
        internal static partial uint ReleaseBuffer(out uint minor, Buffer* buffer);
    
        // MIT krb5 error table (krb5.h, ERROR_TABLE_BASE_krb5 = -1765328384) codes the minor status carries.
        private const int Krb5TicketExpired = -1765328352;
        private const int Krb5TicketNotYetValid = -1765328351;
        private const int Krb5Repeat = -1765328350;
        private const int Krb5NotUs = -1765328349;
        private const int Krb5Skew = -1765328347;
        private const int Krb5Modified = -1765328343;
        private const int Krb5NoKey = -1765328339;
        private const int Krb5WrongPrincipal = -1765328240;
        private const int Krb5KeytabNotFound = -1765328203;
        private const int Krb5BadIntegrity = -1765328353;

        /// <summary>The failure class of a major/minor status pair (minor: MIT's krb5 error table).</summary>
        internal static Auth.GssapiFailure Classify(uint major, uint minor)
        {
            switch ((int)minor)
            {
                case Krb5TicketExpired or Krb5TicketNotYetValid:
                    return Auth.GssapiFailure.Expired;
                case Krb5Skew:
                    return Auth.GssapiFailure.ClockSkew;
                case Krb5Repeat:
                    return Auth.GssapiFailure.Replay;
                case Krb5NotUs or Krb5NoKey or Krb5WrongPrincipal or Krb5KeytabNotFound:
                    return Auth.GssapiFailure.WrongService;
                case Krb5Modified or Krb5BadIntegrity:
                    return Auth.GssapiFailure.Defective;
            }
            return (major >> 16 & 0xFF) switch
            {
                9 or 7 or 6 => Auth.GssapiFailure.Defective, // DEFECTIVE_TOKEN, BAD_SIG, BAD_STATUS
                11 or 12 => Auth.GssapiFailure.Expired, // CREDENTIALS_EXPIRED, CONTEXT_EXPIRED
                10 or 13 when (major & (DuplicateToken | OldToken)) != 0 => Auth.GssapiFailure.Replay,
                _ => Auth.GssapiFailure.Other,
            };
        }

        /// <summary>An exception with the library's text for both statuses.</summary>
        internal static Auth.GssapiException Error(Auth.GssapiFailure failure, string what, uint major, uint minor) =>
            new(failure, $"{what}: {StatusText(major, StatusTypeGss)}; {StatusText(minor, StatusTypeMech)}");

        private static string StatusText(uint status, uint type)
        {
            var parts = new List<string>();
            uint context = 0;
            do
            {
                var output = default(Buffer);
                uint major = DisplayStatus(out _, status, (int)type, IntPtr.Zero, ref context, &output);
                if ((major & ErrorMask) != 0)
                {
                    break;
                }
                if (output.Value is not null)
                {
                    parts.Add(System.Text.Encoding.UTF8.GetString(new ReadOnlySpan<byte>(output.Value, checked((int)output.Length))));
                    ReleaseBuffer(out _, &output);
                }
            }
            while (context != 0 && parts.Count < 8);
            return parts.Count == 0 ? $"status 0x{status:x8}" : string.Join(", ", parts);
        }
    }
}
