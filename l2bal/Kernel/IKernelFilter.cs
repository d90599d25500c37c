using System.Net;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Kernel;

/// <summary>How the cluster MAC reaches every node (docs/design.md#the-vip-and-the-cluster-mac, #switches).</summary>
internal enum MacMode
{
    /// <summary>A multicast MAC (01:00:5e:…): flooded by switches without an IGMP querier.</summary>
    Multicast,
    /// <summary>A locally administered unicast MAC that no frame ever leaves with as source: switches never learn it and flood.</summary>
    UnicastFlood,
}

/// <summary>An inclusive port range.</summary>
internal readonly record struct PortSpan(int Low, int High)
{
    /// <summary>nft syntax: <c>low-high</c>, or the single port (an interval set refuses <c>p-p</c>).</summary>
    public override string ToString() => Low == High
        ? Low.ToString(System.Globalization.CultureInfo.InvariantCulture)
        : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Low}-{High}");
}

/// <summary>Everything the kernel filter needs to know, fixed for the daemon's lifetime.</summary>
/// <param name="Interface">The segment interface (e.g. eth0).</param>
/// <param name="Vip">The shared IPv4 address.</param>
/// <param name="ClusterMac">The MAC the VIP resolves to.</param>
/// <param name="Mode">Multicast or unicast-flood.</param>
/// <param name="Buckets">B, the number of hash buckets.</param>
/// <param name="Seed">The cluster-wide jhash seed (always explicit: nft draws a random one per rule otherwise).</param>
/// <param name="OwnSlice">This node's port slice (accepted by port, whatever the bucket, once Apply grants it).</param>
/// <param name="AllSlices">The union of every node's slice (other nodes' slices are dropped).</param>
/// <param name="TableName">Name of the tables this daemon owns (one per family), e.g. "l2bal".</param>
/// <param name="ServicePorts">The VIP's services (protocol, port); when any are given, new flows to other ports are dropped.</param>
/// <param name="Lease">How long one lease renewal lets new flows in; null: <see cref="DefaultLease"/>.</param>
/// <param name="AffinityRules">Ports whose bucket is not the source address's (<c>--affinity</c>); each a service.</param>
/// <param name="WakePorts">UDP ports of the dns:// probes: their port-unreachables from the VIP are logged to the probe's wake before the drop.</param>
/// <param name="Vip6">The shared IPv6 address, served by a <c>table ip6</c> beside the ip one; null: IPv4 only.</param>
/// <param name="Migrate">Live migration on (<c>--migrate</c>): the moved-flow exceptions of docs/design.md#migration-filter; off, the ruleset is the one without them.</param>
internal sealed record FilterSettings(
    string Interface,
    IPAddress? Vip,
    MacAddress ClusterMac,
    MacMode Mode,
    int Buckets,
    uint Seed,
    PortSpan OwnSlice,
    PortSpan AllSlices,
    string TableName = "l2bal",
    IReadOnlyList<(string Protocol, int Port)>? ServicePorts = null,
    TimeSpan? Lease = null,
    IReadOnlyList<AffinityRule>? AffinityRules = null,
    IReadOnlyList<int>? WakePorts = null,
    IPAddress? Vip6 = null,
    bool Migrate = false)
{
    /// <summary>The daemon's default lease: two thirds of its default 120 ms dead time.</summary>
    public static readonly TimeSpan DefaultLease = TimeSpan.FromMilliseconds(80);

    /// <summary>The lease time, never null.</summary>
    public TimeSpan LeaseTime => Lease ?? DefaultLease;

    /// <summary>The services, never null.</summary>
    public IReadOnlyList<(string Protocol, int Port)> Services => ServicePorts ?? [];

    /// <summary>The ports whose port-unreachables wake a probe, never null.</summary>
    public IReadOnlyList<int> Wakes => WakePorts ?? [];

    /// <summary>The rules that change a bucket (not <c>single</c>), in canonical order; empty: the ruleset of a node without rules.</summary>
    public IReadOnlyList<AffinityRule> Affinity => AffinityRule.Effective(AffinityRules ?? []);
}

/// <summary>Packet counters the filter keeps, by reason (read for status and metrics).</summary>
internal sealed record KernelCounters(
    long AcceptedNew,
    long AcceptedEstablished,
    long AcceptedSlice,
    long DroppedNotOwnedEarly,
    long DroppedNotOwned,
    long DroppedOtherSlice,
    long DroppedNoLease,
    long DroppedMidFlow,
    long LeaseRenewals = 0,
    long LeaseFallbacks = 0,
    long DroppedSliceMidFlow = 0,
    long DroppedStatelessNotOwned = 0,
    long DroppedMovedOut = 0,
    long AcceptedMovedIn = 0)
{
    /// <summary>
    /// With an IPv6 VIP, the ip6 table's share of the counters above, which are totals over both families
    /// (the netdev ones, early and slice drops, are counted before the family's table: totals only); null without one.
    /// </summary>
    public KernelCounters? Ipv6 { get; init; }
}

/// <summary>
/// The per-node kernel filter (docs/design.md#kernel-filter). The daemon decides; this applies.
/// Implementations: nftables through libnftables; test doubles only in tests (docs/conventions.md §8).
/// </summary>
internal interface IKernelFilter : IDisposable
{
    /// <summary>Creates the whole ruleset in one transaction; nothing is accepted for new flows until <see cref="Apply"/>.</summary>
    public void Install(FilterSettings settings);

    /// <summary>
    /// Atomically replaces what this node takes: <paramref name="owned"/> (new flows accepted),
    /// <paramref name="accepted"/> (owned ∪ draining: passes the early drop, so established flows live on)
    /// and, with <paramref name="ownSlice"/>, its port slice (<see cref="FilterSettings.OwnSlice"/>);
    /// and renews the ownership lease for <paramref name="lease"/>.
    /// </summary>
    public void Apply(BucketSet owned, BucketSet accepted, bool ownSlice, TimeSpan lease);

    /// <summary>
    /// Renews the kernel-side ownership lease for <see cref="FilterSettings.LeaseTime"/>: new flows
    /// are taken only while it lives, so a hung daemon stops taking them. Cheap enough to call
    /// with every advert.
    /// </summary>
    public void RenewLease();

    /// <summary>
    /// Changes the moved-flow sets for <paramref name="flows"/> (<see cref="MovedFlowChange"/>). Only with <see cref="FilterSettings.Migrate"/>.
    /// </summary>
    public void MovedOut(IReadOnlyCollection<FlowTuple> flows, MovedFlowChange change);

    /// <summary>
    /// Deletes the conntrack entries of <paramref name="flows"/>, moved away from this node (ctnetlink): this node never sees
    /// them end, and without an entry their packets are mid-flow packets of an unknown flow, dropped silently, also after
    /// l2bal restarts (docs/design.md#migration-filter).
    /// </summary>
    /// <exception cref="KernelFilterException">The netlink socket cannot be opened, or a send or an ack failed.</exception>
    public Net.ConntrackDeletes ForgetMoved(IReadOnlyCollection<FlowTuple> flows);

    /// <summary>The filter's packet counters. Callable from any thread, alongside the loop's changes.</summary>
    public KernelCounters ReadCounters();

    /// <summary>Established flows this node holds, by bucket (from the conntrack mark), for draining.</summary>
    public IReadOnlyDictionary<int, int> FlowsByBucket();

    /// <summary>Removes every table this daemon created (clean stop).</summary>
    public void Remove();
}
