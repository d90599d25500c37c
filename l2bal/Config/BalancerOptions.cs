using System.Net;
using L2Balance.Balancer.Cluster;
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
    /// <summary><c>dns://ADDR:PORT/NAME</c>: a DNS query over UDP for NAME, type A, expecting NOERROR and an answer.</summary>
    Dns,
}

/// <summary>A health probe: kind, target endpoint, command or DNS name (<see cref="DnsWireName"/>: its wire form).</summary>
internal sealed record HealthProbeSpec(HealthProbeKind Kind, IPEndPoint? EndPoint = null, string? Command = null, string? DnsName = null)
{
    public static HealthProbeSpec None { get; } = new(HealthProbeKind.None);

    /// <summary>The DNS name as the probe's question carries it (set by the options builder, which checked it).</summary>
    public byte[]? DnsWireName { get; init; }

    /// <summary>The probes in words: <c>none</c>, or each probe, separated by ", ".</summary>
    public static string Describe(IReadOnlyList<HealthProbeSpec> probes) =>
        probes is null || probes.Count == 0 ? None.ToString() : string.Join(", ", probes);

    public bool Equals(HealthProbeSpec? other) =>
        other is not null && Kind == other.Kind && Equals(EndPoint, other.EndPoint) && Command == other.Command && DnsName == other.DnsName;

    public override int GetHashCode() => HashCode.Combine(Kind, EndPoint, Command, DnsName);

    public override string ToString() => Kind switch
    {
        HealthProbeKind.Socks5 => $"socks5://{EndPoint}",
        HealthProbeKind.Tcp => $"tcp://{EndPoint}",
        HealthProbeKind.Exec => $"exec:{Command}",
        HealthProbeKind.Dns => $"dns://{EndPoint}/{DnsName}",
        _ => "none",
    };
}

/// <summary>The group whose members may change the node over the control socket (<c>--control-group</c>), resolved at start.</summary>
internal sealed record ControlGroup(string Name, uint Gid)
{
    public override string ToString() => Name;
}

/// <summary>A service the VIP offers (<c>--service tcp/1080</c>). With none given every port is balanced; with some, new flows to other ports are dropped silently.</summary>
internal readonly record struct ServiceSpec(string Protocol, int Port)
{
    public override string ToString() => $"{Protocol}/{Port}";
}

/// <summary>
/// The balancer's configuration, from flags, a <c>--config</c> file or both (all produce this one
/// immutable record). Each default is declared once, here, with its unit and why; <c>--help</c>
/// shows it from here (BalancerSettings).
/// </summary>
internal sealed record BalancerOptions
{
    /// <summary>4096 buckets give per-node shares within a fraction of a percent for N ≤ 64.</summary>
    public const int DefaultBuckets = 4096;

    /// <summary>40 ms: a killed node is covered in about 100–125 ms (docs/benchmarks.md); CARP's default is 1 s.</summary>
    public static readonly TimeSpan DefaultAdvertInterval = TimeSpan.FromMilliseconds(40);

    /// <summary>3 missed adverts: dead after 3 × 40 ms = 120 ms, and one late advert is not a death.</summary>
    public const int DefaultDeadAfterMisses = 3;

    /// <summary>Multicast: flooded without switch configuration on most switches.</summary>
    public const MacMode DefaultMacMode = MacMode.Multicast;

    /// <summary>100 ms: a killed local service is seen at the next check (docs/benchmarks.md).</summary>
    public static readonly TimeSpan DefaultHealthInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>2: key ids in clear and a TLV tail (docs/design.md#advert-v2); a node still sends version 1 while a live peer does.</summary>
    public const int DefaultAdvertVersion = 2;

    /// <summary>3 failed probes: one lost greeting does not move buckets (a refused connect counts at once).</summary>
    public const int DefaultHealthFall = 3;

    /// <summary>5 good probes: a flapping service does not flap buckets.</summary>
    public const int DefaultHealthRise = 5;

    /// <summary>500 ms: bounds only a hung service; one under full load answers late without being unhealthy.</summary>
    public static readonly TimeSpan DefaultHealthTimeout = TimeSpan.FromMilliseconds(500);

    /// <summary>The segment interface.</summary>
    public required string Interface { get; init; }

    /// <summary>The shared IPv4 address; null when the cluster has an IPv6 VIP only.</summary>
    public IPAddress? Vip { get; init; }

    /// <summary>The VIP's prefix length as given (informational: the VIP is installed as /32 on lo).</summary>
    public int VipPrefix { get; init; } = 32;

    /// <summary>The shared IPv6 address (a second <c>--vip</c>, or the only one); null: none (docs/design.md#the-vip-and-the-cluster-mac).</summary>
    public IPAddress? Vip6 { get; init; }

    /// <summary>The IPv6 VIP's prefix length as given (informational, as <see cref="VipPrefix"/>).</summary>
    public int Vip6Prefix { get; init; } = 128;

    /// <summary>This node's id, 1..NodeCount.</summary>
    public required int NodeId { get; init; }

    /// <summary>How many nodes the cluster has (N); at most 64 (one bit each in an advert).</summary>
    public required int NodeCount { get; init; }

    /// <summary>The shared HMAC key file (at least 16 bytes; <c>l2bal genkey</c> makes one).</summary>
    public required string KeyFile { get; init; }

    /// <summary>
    /// During a key change, the key being replaced: adverts under it are accepted too, and this
    /// node signs with it until every live peer accepts <see cref="KeyFile"/> (docs/design.md#key-rollover). Null: none.
    /// </summary>
    public string? PreviousKeyFile { get; init; }

    /// <summary>
    /// The highest advert version this node sends and accepts; <see cref="DefaultAdvertVersion"/>. 1 makes it
    /// send and accept exactly what a version-1 daemon does, for a cluster being upgraded (docs/design.md#advert-v2).
    /// </summary>
    public int AdvertVersion { get; init; } = DefaultAdvertVersion;

    /// <summary>
    /// This node's weight, 1..1000: its share of the buckets is its weight over the live nodes' total
    /// (docs/design.md#weights). <see cref="Cluster.Ownership.DefaultWeight"/>: adverts as without weights.
    /// </summary>
    public int Weight { get; init; } = Cluster.Ownership.DefaultWeight;

    /// <summary>
    /// Live migration (<c>--migrate</c>, docs/design.md#node-addresses): this node's own addresses for the
    /// migration channel, advertised to peers, and the moved-flow filter rules. Null: off.
    /// </summary>
    public Protocol.NodeAddresses? Migration { get; init; }

    /// <summary>B, hash buckets; <see cref="DefaultBuckets"/>.</summary>
    public int Buckets { get; init; } = DefaultBuckets;

    /// <summary>The jhash seed; null: derived from the cluster id, so every node agrees with no setting.</summary>
    public uint? Seed { get; init; }

    /// <summary>The cluster id carried in adverts; null: derived from the VIPs (<see cref="DerivedClusterId"/>).</summary>
    public uint? ClusterId { get; init; }

    /// <summary>Interval between advertisements; <see cref="DefaultAdvertInterval"/>.</summary>
    public TimeSpan AdvertInterval { get; init; } = DefaultAdvertInterval;

    /// <summary>Missed adverts before a peer is dead; <see cref="DefaultDeadAfterMisses"/>.</summary>
    public int DeadAfterMisses { get; init; } = DefaultDeadAfterMisses;

    /// <summary>Multicast or unicast-flood; <see cref="DefaultMacMode"/>.</summary>
    public MacMode MacMode { get; init; } = DefaultMacMode;

    /// <summary>Services the VIP offers; empty (default): every port is balanced.</summary>
    public IReadOnlyList<ServiceSpec> Services { get; init; } = [];

    /// <summary>Affinity rules of services (<c>--affinity</c>); a port without one hashes the source address (single).</summary>
    public IReadOnlyList<AffinityRule> Affinity { get; init; } = [];

    /// <summary>
    /// The local services' health probes (<c>--health</c>, repeatable); none by default. Health is
    /// per node: any failing probe makes the node unhealthy (docs/design.md#health).
    /// </summary>
    public IReadOnlyList<HealthProbeSpec> Health { get; init; } = [];

    /// <summary>
    /// Time between health checks; <see cref="DefaultHealthInterval"/>. For the node's own SOCKS5 or
    /// TCP service a healthy node runs the full probe (HealthProbe) once in five checks and asks the
    /// kernel whether the service still listens in the others (ListenCheck); any other probe runs
    /// at every check.
    /// </summary>
    public TimeSpan HealthInterval { get; init; } = DefaultHealthInterval;

    /// <summary>Consecutive failed probes (timeouts, wrong answers) before the node advertises unhealthy; <see cref="DefaultHealthFall"/>.</summary>
    public int HealthFall { get; init; } = DefaultHealthFall;

    /// <summary>Consecutive good probes before an unhealthy node is healthy again; <see cref="DefaultHealthRise"/>.</summary>
    public int HealthRise { get; init; } = DefaultHealthRise;

    /// <summary>How long one probe may wait for its answer; <see cref="DefaultHealthTimeout"/>.</summary>
    public TimeSpan HealthTimeout { get; init; } = DefaultHealthTimeout;

    /// <summary>The control socket path; null: the abstract socket "@l2bal", one per network namespace.</summary>
    public string? ControlPath { get; init; }

    /// <summary>Members of this group may drain and undrain the node like root; null (default): root only (docs/design.md#control-and-status).</summary>
    public ControlGroup? ControlGroup { get; init; }

    /// <summary>Prometheus endpoint; null: none.</summary>
    public IPEndPoint? Metrics { get; init; }

    /// <summary>Where the options came from, for messages: "flags", or the <c>--config</c> file (flags given with it win).</summary>
    public string Source { get; init; } = "flags";

    /// <summary>
    /// Why <c>run</c> and <c>check-config</c> refuse these options although they parse, or null. An IPv6 VIP is
    /// served alone as beside an IPv4 one (docs/design.md#an-ipv6-vip-alone), live migration included, except the
    /// port-unreachable wake of a dns:// probe of the node's own service (ICMP, IPv4, errors only): that needs an IPv4 VIP.
    /// </summary>
    public string? Unserved => Vip is not null || Vip6 is null ? null
        : Health.FirstOrDefault(p => p.Kind == HealthProbeKind.Dns && p.EndPoint is { } e && (e.Address.Equals(Vip6) || IPAddress.IsLoopback(e.Address))) is { } dns
            ? $"--health {dns}: the port-unreachable wake of a dns:// probe of the node's own service is IPv4 only, and --vip {Vip6} is an IPv6 VIP alone: give an IPv4 --vip too (docs/design.md#an-ipv6-vip-alone)"
            : null;

    /// <summary>The effective cluster id.</summary>
    public uint EffectiveClusterId => ClusterId ?? DerivedClusterId(Vip, Vip6);

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

    /// <summary>
    /// The cluster id without <c>--cluster-id</c>: the IPv4 VIP as a 32-bit number whenever there is one
    /// (so adding an IPv6 VIP changes neither id, seed nor MAC); an IPv6 VIP alone gives its four
    /// 32-bit words XORed, which differs for any two VIPs that share their first 96 bits (one segment's /64).
    /// </summary>
    public static uint DerivedClusterId(IPAddress? vip, IPAddress? vip6)
    {
        Span<byte> bytes = stackalloc byte[16];
        if (vip is not null)
        {
            vip.TryWriteBytes(bytes, out _);
            return System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes);
        }
        ArgumentNullException.ThrowIfNull(vip6);
        vip6.TryWriteBytes(bytes, out _);
        uint id = 0;
        for (int i = 0; i < 16; i += 4)
        {
            id ^= System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes[i..]);
        }
        return id;
    }
}
