using System.Net;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Config;

/// <summary>
/// The proxy's whole configuration. Both front ends (command-line flags and a Dante
/// sockd.conf) produce this one immutable model (docs/conventions.md §17). Each default is stated here once.
/// </summary>
public sealed record ProxyOptions
{
    /// <summary>Where clients connect (Dante <c>internal</c>). At least one.</summary>
    public IReadOnlyList<ListenSpec> Internal { get; init; } = [];

    /// <summary>Addresses for outgoing traffic (Dante <c>external</c>). Empty: the kernel chooses.</summary>
    public IReadOnlyList<ExternalSpec> External { get; init; } = [];

    /// <summary>Dante <c>external.rotation</c>; default <c>none</c> (Dante's default).</summary>
    public ExternalRotation ExternalRotation { get; init; } = ExternalRotation.None;

    /// <summary>Dante <c>clientmethod</c>; default <c>none</c>.</summary>
    public IReadOnlyList<MethodKind> ClientMethods { get; init; } = [MethodKind.None];

    /// <summary>Dante <c>socksmethod</c>: the SOCKS5 methods offered, in order of preference; default <c>none</c>.</summary>
    public IReadOnlyList<MethodKind> SocksMethods { get; init; } = [MethodKind.None];

    /// <summary>Users file of salted PBKDF2 hashes (<c>l2proxy passwd</c>); required when <c>username</c> is a method.</summary>
    public string? UsersFile { get; init; }

    /// <summary>
    /// Keytab for <c>socksmethod gssapi</c> (<c>--gssapi-keytab</c>) where a client rule names none (<c>gssapi.keytab</c>);
    /// null: MIT's default (<c>KRB5_KTNAME</c>, else /etc/krb5.keytab).
    /// </summary>
    public string? GssapiKeytab { get; init; }

    /// <summary>
    /// Service principal for <c>socksmethod gssapi</c> (<c>--gssapi-servicename</c>) where a client rule names none
    /// (<c>gssapi.servicename</c>); null: any key of the keytab.
    /// </summary>
    public string? GssapiServiceName { get; init; }

    /// <summary>Dante <c>user.privileged</c>; recorded, the proxy runs as the user that started it unless <see cref="UserUnprivileged"/> is set.</summary>
    public string? UserPrivileged { get; init; }

    /// <summary>Dante <c>user.unprivileged</c>: after binding, the proxy drops to this user.</summary>
    public string? UserUnprivileged { get; init; }

    /// <summary>Dante <c>timeout.negotiate</c>: a client must finish the SOCKS handshake within this; 30 s matches Dante's default.</summary>
    public TimeSpan NegotiateTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Dante <c>timeout.io</c>: idle time after which a session is closed; zero means never (Dante's default for TCP).</summary>
    public TimeSpan IoTimeout { get; init; } = TimeSpan.Zero;

    /// <summary>Dante <c>timeout.connect</c>: limit for the outgoing connect; 30 s matches Dante's default.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Limit on name resolution of a request's domain name; 10 s.</summary>
    public TimeSpan ResolveTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Ports for the sockets the proxy binds for UDP relays and BIND (Dante <c>udp.portrange</c>
    /// at top level, or <c>--port-range</c>). Null: the kernel's ephemeral range.
    /// In a cluster each node keeps to its own slice (<c>l2bal slice</c>); with the VIP as external
    /// address (single-IP mode) outgoing TCP and UDP on it too (docs/design.md#single-ip-mode).
    /// </summary>
    public PortRange? PortRange { get; init; }

    /// <summary>Dante <c>client pass|block</c> rules, first match wins, nothing passes unless a rule passes it.</summary>
    public IReadOnlyList<ClientRule> ClientRules { get; init; } = [];

    /// <summary>Dante <c>socks pass|block</c> rules, first match wins, nothing passes unless a rule passes it.</summary>
    public IReadOnlyList<SocksRule> SocksRules { get; init; } = [];

    /// <summary>Dante <c>logoutput</c>: where session events go; default standard error.</summary>
    public IReadOnlyList<LogTarget> LogOutput { get; init; } = [LogTarget.Stderr];

    /// <summary>Dante <c>errorlog</c>: where errors go in addition; empty by default.</summary>
    public IReadOnlyList<LogTarget> ErrorLog { get; init; } = [];

    /// <summary>Dante <c>debug</c> level (0, 1 or 2).</summary>
    public int Debug { get; init; }

    /// <summary>Most concurrent client sessions; 10 000 by default (file descriptors are the real bound).</summary>
    public int MaxClients { get; init; } = 10_000;

    /// <summary>Most concurrent sessions from one client address; 1 000 by default.</summary>
    public int MaxClientsPerAddress { get; init; } = 1_000;

    /// <summary>Most concurrent UDP associations; 2 000 by default.</summary>
    public int MaxUdpAssociations { get; init; } = 2_000;

    /// <summary>
    /// Where to serve Prometheus metrics (<c>--metrics ADDR:PORT</c>, <c>metrics: ADDR port = N</c>,
    /// an l2proxy extension); null: no metrics endpoint (the default).
    /// </summary>
    public IPEndPoint? Metrics { get; init; }

    /// <summary>
    /// Worker processes (<c>--workers</c>, <c>workers:</c>, an l2proxy extension like Dante's <c>sockd -N</c>);
    /// 1, the default, means one process and no supervisor. Each worker accepts on the same addresses
    /// (SO_REUSEPORT); with metrics, worker i serves them on the metrics port + i.
    /// </summary>
    public int Workers { get; init; } = 1;

    /// <summary>
    /// The migration control socket (issue 19, <c>--migrate-control</c>): <c>@NAME</c> for an abstract unix
    /// socket, else a path; null: the default <c>@l2proxy-migrate</c> of this network namespace.
    /// </summary>
    public string? MigrateControl { get; init; }

    /// <summary>Upper bound on <see cref="Workers"/>: 64, far above any core count this runs on.</summary>
    public const int MaxWorkers = 64;

    /// <summary>Every default, as the property initializers above declare them; <c>--help</c> shows them from here.</summary>
    public static ProxyOptions Defaults { get; } = new();

    /// <summary>Where the configuration came from, for messages ("flags" or a file path).</summary>
    public string Source { get; init; } = "flags";
}

/// <summary>An <c>internal</c> entry: an address or an interface name, and a port.</summary>
public sealed record ListenSpec(IPAddress? Address, string? Interface, ushort Port)
{
    public override string ToString() => Address is not null
        ? new IPEndPoint(Address, Port).ToString()
        : $"{Interface} port = {Port}";
}

/// <summary>An <c>external</c> entry: an address or an interface name.</summary>
public sealed record ExternalSpec(IPAddress? Address, string? Interface)
{
    public override string ToString() => Address?.ToString() ?? Interface!;
}

/// <summary>Dante <c>external.rotation</c> values.</summary>
public enum ExternalRotation
{
    /// <summary>Always the first external address of the matching family.</summary>
    None,
    /// <summary>The kernel's route decides (Dante <c>route</c>): no explicit bind.</summary>
    Route,
    /// <summary>Dante <c>same-same</c>: the external address equals the internal address the client reached.</summary>
    SameSame,
}

/// <summary>Authentication methods named in Dante's configuration.</summary>
public enum MethodKind
{
    None,
    Username,
    /// <summary>RFC 1961 GSS-API (Kerberos), X'01'.</summary>
    Gssapi,
}

/// <summary>An inclusive port range, LO-HI.</summary>
public readonly record struct PortRange(ushort Low, ushort High)
{
    public bool Contains(int port) => port >= Low && port <= High;

    public int Count => High - Low + 1;

    public override string ToString() => $"{Low}-{High}";
}

/// <summary>A log destination: stderr, stdout, syslog (with a facility) or a file.</summary>
public sealed record LogTarget(LogTargetKind Kind, string? Path = null, string? Facility = null)
{
    public static LogTarget Stderr { get; } = new(LogTargetKind.Stderr);

    public override string ToString() => Kind switch
    {
        LogTargetKind.File => Path!,
        LogTargetKind.Syslog => Facility is null ? "syslog" : $"syslog/{Facility}",
        _ => Kind.ToString().ToLowerInvariant(),
    };
}

public enum LogTargetKind
{
    Stderr,
    Stdout,
    Syslog,
    File,
}
