using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using static L2Balance.Proxy.Interop.Interop;

namespace L2Balance.Proxy.Auth;

/// <summary>Why a GSS-API step failed; the label of <c>l2proxy_gssapi_failures_total</c>.</summary>
public enum GssapiFailure
{
    /// <summary>The ticket is for a principal the keytab has no key for (another service or host).</summary>
    WrongService,
    /// <summary>The ticket has expired or is not yet valid.</summary>
    Expired,
    /// <summary>The client's clock is outside the allowed skew.</summary>
    ClockSkew,
    /// <summary>The token was seen before (replay cache, or a per-message sequence number).</summary>
    Replay,
    /// <summary>A token that does not decode or whose checksum fails.</summary>
    Defective,
    /// <summary>The keytab or service name could not give an acceptor credential.</summary>
    Credential,
    /// <summary>A protection level the server does not allow, or not one octet of 0 to 3.</summary>
    ProtectionLevel,
    /// <summary>A message that is not the RFC 1961 message expected next (wrong MTYP, abort, oversized token).</summary>
    Protocol,
    /// <summary>Any other GSS-API error.</summary>
    Other,
}

/// <summary>A GSS-API error: the failure class and the library's own text (untrusted, escaped when logged).</summary>
public sealed class GssapiException(GssapiFailure failure, string message) : Exception(message)
{
    public GssapiFailure Failure { get; } = failure;
}

/// <summary>
/// Acceptor credentials of MIT Kerberos, one per (keytab, service name) pair, acquired on first use and kept.
/// Per rule, not per process: <c>gss_acquire_cred_from</c> takes the keytab as a credential store element, so
/// two client rules may name two keytabs without the process-wide <c>KRB5_KTNAME</c> (what .NET's
/// NegotiateAuthentication and <c>krb5_gss_register_acceptor_identity</c> would need).
/// </summary>
public static unsafe class GssapiCredentials
{
    private static readonly ConcurrentDictionary<(string? Keytab, string? Service), IntPtr> Acquired = new();
    private static readonly Lock AcquireLock = new();

    /// <summary>1.2.840.113554.1.2.1.4, GSS_C_NT_HOSTBASED_SERVICE ("service@host").</summary>
    private static readonly byte[] HostBasedServiceOid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x01, 0x04];

    /// <summary>1.2.840.113554.1.2.2.1, GSS_KRB5_NT_PRINCIPAL_NAME ("service/host@REALM").</summary>
    private static readonly byte[] Krb5PrincipalOid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01];

    /// <summary>
    /// The credential for <paramref name="keytab"/> (null: the library default) and <paramref name="serviceName"/>
    /// (null: any key in the keytab; "svc@host": a host-based service; else a Kerberos principal "svc/host[@REALM]").
    /// </summary>
    public static IntPtr Get(string? keytab, string? serviceName)
    {
        if (Acquired.TryGetValue((keytab, serviceName), out var cached))
        {
            return cached;
        }
        lock (AcquireLock)
        {
            if (Acquired.TryGetValue((keytab, serviceName), out cached))
            {
                return cached;
            }
            var credential = Acquire(keytab, serviceName);
            Acquired[(keytab, serviceName)] = credential;
            return credential;
        }
    }

    private static IntPtr Acquire(string? keytab, string? serviceName)
    {
        var name = IntPtr.Zero;
        try
        {
            if (serviceName is not null)
            {
                bool hostBased = serviceName.Contains('@', StringComparison.Ordinal) && !serviceName.Contains('/', StringComparison.Ordinal);
                byte[] nameBytes = Encoding.UTF8.GetBytes(serviceName);
                byte[] oidBytes = hostBased ? HostBasedServiceOid : Krb5PrincipalOid;
                fixed (byte* n = nameBytes)
                fixed (byte* o = oidBytes)
                {
                    var buffer = new Gssapi.Buffer { Length = (nuint)nameBytes.Length, Value = n };
                    var oid = new Gssapi.Oid { Length = (uint)oidBytes.Length, Elements = o };
                    uint major = Gssapi.ImportName(out uint minor, &buffer, &oid, out name);
                    if ((major & Gssapi.ErrorMask) != 0)
                    {
                        throw Gssapi.Error(GssapiFailure.Credential, $"service name '{serviceName}'", major, minor);
                    }
                }
            }
            byte[] key = "keytab\0"u8.ToArray();
            byte[] value = Encoding.UTF8.GetBytes((keytab ?? string.Empty) + "\0");
            fixed (byte* k = key)
            fixed (byte* v = value)
            {
                var element = new Gssapi.KeyValue { Key = k, Value = v };
                var store = new Gssapi.KeyValueSet { Count = 1, Elements = &element };
                uint major = Gssapi.AcquireCredFrom(out uint minor, name, Gssapi.Indefinite, IntPtr.Zero, Gssapi.CredAccept,
                    keytab is null ? null : &store, out var credential, IntPtr.Zero, IntPtr.Zero);
                if ((major & Gssapi.ErrorMask) != 0)
                {
                    throw Gssapi.Error(GssapiFailure.Credential, $"acceptor credential from keytab '{keytab ?? "(default)"}'", major, minor);
                }
                return credential;
            }
        }
        catch (DllNotFoundException e)
        {
            throw new GssapiException(GssapiFailure.Credential, $"GSS-API library {Libraries.GssapiKrb5} not found (Debian package libgssapi-krb5-2): {e.Message}");
        }
        finally
        {
            if (name != IntPtr.Zero)
            {
                Gssapi.ReleaseName(out _, ref name);
            }
        }
    }
}

/// <summary>
/// One acceptor security context (RFC 2744): the establishment steps, then per-message wrap and unwrap.
/// Calls are serialized: the two relay directions share the context, and MIT's sequence state is not documented as thread-safe.
/// </summary>
public sealed unsafe class GssapiContext : IDisposable
{
    private readonly IntPtr _credential;
    private readonly Lock _lock = new();
    private IntPtr _context;
    private bool _disposed;

    public GssapiContext(IntPtr credential) => _credential = credential;

    /// <summary>The client's principal once the context is established.</summary>
    public string? Principal { get; private set; }

    /// <summary>True once the last step completed.</summary>
    public bool IsEstablished { get; private set; }

    /// <summary>The context's flags (GSS_C_INTEG_FLAG, GSS_C_CONF_FLAG, ...).</summary>
    public uint Flags { get; private set; }

    /// <summary>
    /// One call of gss_accept_sec_context: the token for the client (may be empty), and whether the context
    /// is now established. Throws <see cref="GssapiException"/> on failure.
    /// </summary>
    public byte[] Accept(ReadOnlySpan<byte> input)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (IsEstablished)
            {
                throw new GssapiException(GssapiFailure.Protocol, "authentication token after the context was established");
            }
            var output = default(Gssapi.Buffer);
            var sourceName = IntPtr.Zero;
            try
            {
                uint major, minor, flags;
                fixed (byte* p = input)
                {
                    var buffer = new Gssapi.Buffer { Length = (nuint)input.Length, Value = p };
                    major = Gssapi.AcceptSecContext(out minor, ref _context, _credential, &buffer, IntPtr.Zero, out sourceName,
                        IntPtr.Zero, &output, out flags, IntPtr.Zero, IntPtr.Zero);
                }
                if ((major & Gssapi.ErrorMask) != 0)
                {
                    throw Gssapi.Error(Gssapi.Classify(major, minor), "accept", major, minor);
                }
                byte[] token = output.Length == 0 ? [] : new ReadOnlySpan<byte>(output.Value, checked((int)output.Length)).ToArray();
                if ((major & Gssapi.ContinueNeeded) == 0)
                {
                    IsEstablished = true;
                    Flags = flags;
                    Principal = DisplayName(sourceName);
                }
                return token;
            }
            finally
            {
                if (output.Value is not null)
                {
                    Gssapi.ReleaseBuffer(out _, &output);
                }
                if (sourceName != IntPtr.Zero)
                {
                    Gssapi.ReleaseName(out _, ref sourceName);
                }
            }
        }
    }

    /// <summary>gss_wrap of <paramref name="data"/>, with confidentiality when <paramref name="confidential"/>; the token is written after <paramref name="reserve"/> bytes left free for a header.</summary>
    public byte[] Wrap(ReadOnlySpan<byte> data, bool confidential, int reserve = 0)
    {
        lock (_lock)
        {
            CheckEstablished();
            var output = default(Gssapi.Buffer);
            try
            {
                uint major, minor;
                fixed (byte* p = data)
                {
                    var buffer = new Gssapi.Buffer { Length = (nuint)data.Length, Value = p };
                    major = Gssapi.Wrap(out minor, _context, confidential ? 1 : 0, 0, &buffer, out _, &output);
                }
                if ((major & Gssapi.ErrorMask) != 0)
                {
                    throw Gssapi.Error(Gssapi.Classify(major, minor), "wrap", major, minor);
                }
                byte[] result = new byte[reserve + checked((int)output.Length)];
                new ReadOnlySpan<byte>(output.Value, (int)output.Length).CopyTo(result.AsSpan(reserve));
                return result;
            }
            finally
            {
                if (output.Value is not null)
                {
                    Gssapi.ReleaseBuffer(out _, &output);
                }
            }
        }
    }

    /// <summary>gss_unwrap: the data and whether it was confidential. A replayed or stale token is <see cref="GssapiFailure.Replay"/>.</summary>
    public byte[] Unwrap(ReadOnlySpan<byte> token, out bool confidential)
    {
        lock (_lock)
        {
            CheckEstablished();
            var output = default(Gssapi.Buffer);
            try
            {
                uint major, minor;
                int conf;
                fixed (byte* p = token)
                {
                    var buffer = new Gssapi.Buffer { Length = (nuint)token.Length, Value = p };
                    major = Gssapi.Unwrap(out minor, _context, &buffer, &output, out conf, out _);
                }
                if ((major & Gssapi.ErrorMask) != 0)
                {
                    throw Gssapi.Error(Gssapi.Classify(major, minor), "unwrap", major, minor);
                }
                if ((major & (Gssapi.DuplicateToken | Gssapi.OldToken)) != 0)
                {
                    throw new GssapiException(GssapiFailure.Replay, "unwrap: duplicate or old per-message token");
                }
                confidential = conf != 0;
                return output.Length == 0 ? [] : new ReadOnlySpan<byte>(output.Value, checked((int)output.Length)).ToArray();
            }
            finally
            {
                if (output.Value is not null)
                {
                    Gssapi.ReleaseBuffer(out _, &output);
                }
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            if (_context != IntPtr.Zero)
            {
                Gssapi.DeleteSecContext(out _, ref _context, IntPtr.Zero);
            }
        }
    }

    private void CheckEstablished()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!IsEstablished)
        {
            throw new GssapiException(GssapiFailure.Protocol, "per-message token before the context was established");
        }
    }

    private static string DisplayName(IntPtr name)
    {
        var output = default(Gssapi.Buffer);
        try
        {
            uint major = Gssapi.DisplayName(out _, name, &output, IntPtr.Zero);
            return (major & Gssapi.ErrorMask) != 0 || output.Value is null
                ? string.Empty
                : Encoding.UTF8.GetString(new ReadOnlySpan<byte>(output.Value, checked((int)output.Length)));
        }
        finally
        {
            if (output.Value is not null)
            {
                Gssapi.ReleaseBuffer(out _, &output);
            }
        }
    }
}

/// <summary>The keytabs a configuration names, checked before it serves: present, and not open to others.</summary>
public static class GssapiKeytabs
{
    /// <summary>Every keytab <paramref name="options"/> uses with <c>socksmethod gssapi</c>: the flag's and each client rule's.</summary>
    public static IEnumerable<string> Named(Config.ProxyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!options.SocksMethods.Contains(Config.MethodKind.Gssapi))
        {
            return [];
        }
        return new[] { options.GssapiKeytab }.Concat(options.ClientRules.Select(r => r.Gssapi?.Keytab)).OfType<string>().Distinct(StringComparer.Ordinal);
    }

    /// <summary>Null when every keytab is usable; otherwise why not, with the fix. A keytab others can read is a service key anyone on the host can use.</summary>
    public static string? Check(Config.ProxyOptions options)
    {
        foreach (var path in Named(options))
        {
            if (!File.Exists(path))
            {
                return $"gssapi keytab {path}: not found";
            }
            if (OperatingSystem.IsWindows())
            {
                continue;
            }
            var mode = File.GetUnixFileMode(path);
            if ((mode & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute)) != 0)
            {
                return $"gssapi keytab {path} is {((mode & UnixFileMode.OtherRead) != 0 ? "readable" : "writable")} by others "
                    + $"(mode {Convert.ToString((int)mode & 0x1FF, 8).PadLeft(4, '0')}): it holds the service key; run chmod 600 {path}";
            }
        }
        return null;
    }
}
