using System.Net;
using L2Balance.Balancer.Kernel;

namespace L2Balance.Balancer.Config;

/// <summary>How the local service is probed (<c>--health</c>).</summary>
internal enum HealthProbeKind
{
    /// <summary>No probe: the node is always healthy.</summary>
    None,
    /// <summary><c>socks5://HOST:PORT</c>: a real SOCKS5 greeting, expecting method "no authentication" or "username".</summary>
    Socks5,
    /// <summary><c>tcp://HOST:PORT</c>: a TCP connect.</summary>
    Tcp,
    /// <summary><c>exec:COMMAND</c>: a command that exits 0 when healthy (run through /bin/sh -c).</summary>
    Exec,
}

/// <summary>The health probe: kind, target endpoint or command.</summary>
internal sealed record HealthProbeSpec(HealthProbeKind Kind, IPEndPoint? EndPoint = null, string? Command = null)
{
    public static HealthProbeSpec None { get; } = new(HealthProbeKind.None);

    public override string ToString() => Kind switch
    {
        HealthProbeKind.Socks5 => $"socks5://{EndPoint}",
        HealthProbeKind.Tcp => $"tcp://{EndPoint}",
        HealthProbeKind.Exec => $"exec:{Command}",
        _ => "none",
    };
}

/// <summary>A service the VIP offers (<c>--service tcp/1080</c>). With none given every port is balanced; with some, new flows to other ports are dropped silently.</summary>
internal readonly record struct ServiceSpec(string Protocol, int Port)
{
    public override string ToString() => $"{Protocol}/{Port}";
}

/// <summary>
/// The balancer's configuration, from flags or a <c>--config</c> file (both produce this one
/// immutable record, docs/conventions.md §17). Each default is stated once, here, with its provenance (§19).
/// </summary>
internal sealed record BalancerOptions
{
    /// <summary>The segment interface.</summary>
    public required string Interface { get; init; }

    /// <summary>The shared IPv4 address.</summary>
    public required IPAddress Vip { get; init; }

    /// <summary>The VIP's prefix length as given (informational: the VIP is installed as /32 on lo).</summary>
    public int VipPrefix { get; init; } = 32;

    /// <summary>This node's id, 1..NodeCount.</summary>
    public required int NodeId { get; init; }

    /// <summary>How many nodes the cluster has (N); at most 64 (one bit each in an advert).</summary>
    public required int NodeCount { get; init; }

    /// <summary>The shared HMAC key file (at least 16 bytes; <c>l2bal genkey</c> makes one).</summary>
    public required string KeyFile { get; init; }

    /// <summary>B, hash buckets; 4096 gives per-node shares within a fraction of a percent for N ≤ 64.</summary>
    public int Buckets { get; init; } = 4096;

    /// <summary>The jhash seed; null: derived from the cluster id, so every node agrees with no setting.</summary>
    public uint? Seed { get; init; }

    /// <summary>The cluster id carried in adverts; null: the VIP as a 32-bit number (unique per segment).</summary>
    public uint? ClusterId { get; init; }

    /// <summary>
    /// Interval between advertisements; 40 ms (CARP's default is 1 s). A killed node is covered
    /// after the dead time (3 × 40 = 120 ms) less the time since its last advert (0–40 ms), plus
    /// the filter update: about 100–125 ms. At the first default of 50 ms, 25 kills in 7 failover
    /// bench runs gave a median of 140 ms, and single 5-kill runs ranged from 122 to 151 ms
    /// against the 150 ms target; 40 ms gave 95–124 ms in six runs. It costs about a quarter
    /// more idle CPU (failover bench, no health probe: 0.3–0.8 % of a core at 50 ms, 0.4–1.0 % at
    /// 40 ms).
    /// </summary>
    public TimeSpan AdvertInterval { get; init; } = DefaultAdvertInterval;

    /// <summary>The default of <see cref="AdvertInterval"/>, for the command line.</summary>
    public static readonly TimeSpan DefaultAdvertInterval = TimeSpan.FromMilliseconds(40);

    /// <summary>Missed adverts before a peer is dead; 3 × 40 ms = 120 ms to declare a peer dead.</summary>
    public int DeadAfterMisses { get; init; } = 3;

    /// <summary>Multicast (default, no switch configuration on most switches) or unicast-flood.</summary>
    public MacMode MacMode { get; init; } = MacMode.Multicast;

    /// <summary>Services the VIP offers; empty (default): every port is balanced.</summary>
    public IReadOnlyList<ServiceSpec> Services { get; init; } = [];

    /// <summary>The local service's health probe; none by default.</summary>
    public HealthProbeSpec Health { get; init; } = HealthProbeSpec.None;

    /// <summary>
    /// Time between health checks; 100 ms. For the node's own SOCKS5 or TCP service a healthy
    /// node runs the full probe (a TCP handshake and the greeting, see HealthProbe: at 50 ms it
    /// cost each l2bal 0.45 % of a core and each l2proxy 1.4 %) once in five checks and asks the
    /// kernel whether the service still listens in the others (ListenCheck); any other probe runs
    /// at every check. A killed service is seen at the next check, within 100 ms, because nothing
    /// listening turns the node unhealthy at once (HealthPolicy); earlier, probing every 50 ms
    /// with three failures needed, it took 150 ms.
    /// </summary>
    public TimeSpan HealthInterval { get; init; } = DefaultHealthInterval;

    /// <summary>The default of <see cref="HealthInterval"/>, for the command line.</summary>
    public static readonly TimeSpan DefaultHealthInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Consecutive failed probes before the node advertises unhealthy; 3. Counts timeouts and wrong
    /// answers; a refused connect (nothing listens) is unhealthy at the first one.
    /// </summary>
    public int HealthFall { get; init; } = 3;

    /// <summary>Consecutive good probes before an unhealthy node is healthy again; 5, so a flapping service does not flap buckets.</summary>
    public int HealthRise { get; init; } = 5;

    /// <summary>
    /// How long one probe may wait for its answer; 500 ms. A dead proxy refuses at once (detected
    /// at the first refused probe); this bounds only a hung one, and a proxy under full
    /// load answers its greeting late (measured: over 40 ms at a load average of 45 on 2 cores)
    /// without being unhealthy.
    /// </summary>
    public TimeSpan HealthTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The control socket path; null: the abstract socket "@l2bal", one per network namespace.</summary>
    public string? ControlPath { get; init; }

    /// <summary>Prometheus endpoint; null: none.</summary>
    public IPEndPoint? Metrics { get; init; }

    /// <summary>Where the options came from, for messages.</summary>
    public string Source { get; init; } = "flags";

    /// <summary>The effective cluster id.</summary>
    public uint EffectiveClusterId => ClusterId ?? VipAsNumber(Vip);

    /// <summary>The effective seed.</summary>
    public uint EffectiveSeed => Seed ?? EffectiveClusterId;

    /// <summary>A peer is dead after this long without an advert.</summary>
    public TimeSpan DeadTime => AdvertInterval * DeadAfterMisses;

    /// <summary>
    /// The kernel ownership lease: two thirds of the dead time, renewed every interval, so a hung
    /// daemon stops taking new flows before its peers declare it dead and take its buckets.
    /// </summary>
    public TimeSpan LeaseTime => DeadTime * 2 / 3;

    /// <summary>
    /// How long a changed view must have been advertised before claiming under it: half an
    /// interval, far above one-way delivery delay on a segment (HandoverPlanner remarks).
    /// </summary>
    public TimeSpan SettleTime => AdvertInterval / 2;

    private static uint VipAsNumber(IPAddress vip)
    {
        Span<byte> bytes = stackalloc byte[4];
        vip.TryWriteBytes(bytes, out _);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes);
    }
}
