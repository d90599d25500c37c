using System.Text.Json;
using System.Text.Json.Serialization;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Diagnostics;

/// <summary>
/// A fact of the daemon's life that operators, tests, the demo and the benchmarks may need: a
/// peer's death, a bucket move, a stall, a change of this node's state. Each kind is logged once
/// with its own event id (docs/events.md), counted, and kept with its time in the bounded list of
/// recent events of <c>l2bal status --json</c> (docs/status-json.md, where the kind names below
/// are the stable <c>kind</c> values). The record carries typed fields only; wording lives in
/// <see cref="BalancerLog"/>.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "kind")]
[JsonDerivedType(typeof(PeerAlive), EventKind.PeerAlive)]
[JsonDerivedType(typeof(PeerDead), EventKind.PeerDead)]
[JsonDerivedType(typeof(PeerLeft), EventKind.PeerLeft)]
[JsonDerivedType(typeof(PeerStateChanged), EventKind.PeerStateChanged)]
[JsonDerivedType(typeof(ViewChanged), EventKind.ViewChanged)]
[JsonDerivedType(typeof(BucketsChanged), EventKind.BucketsChanged)]
[JsonDerivedType(typeof(ReleasedAll), EventKind.ReleasedAll)]
[JsonDerivedType(typeof(Stalled), EventKind.Stalled)]
[JsonDerivedType(typeof(LinkDown), EventKind.LinkDown)]
[JsonDerivedType(typeof(LinkUp), EventKind.LinkUp)]
[JsonDerivedType(typeof(LocalStateChanged), EventKind.LocalStateChanged)]
[JsonDerivedType(typeof(DrainFinished), EventKind.DrainFinished)]
[JsonDerivedType(typeof(SpoofSeen), EventKind.SpoofSeen)]
internal abstract record BalancerEvent
{
    /// <summary>Position in the daemon's event sequence (1, 2, …): a reader keeps the last one it saw and asks for later ones.</summary>
    [JsonPropertyOrder(-3)]
    public long Seq { get; init; }

    /// <summary>Wall-clock time the daemon recorded it (UTC).</summary>
    [JsonPropertyOrder(-2)]
    public DateTime Time { get; init; }

    /// <summary>Milliseconds since the daemon started, on its monotonic clock.</summary>
    [JsonPropertyOrder(-1)]
    public double UptimeMs { get; init; }

    /// <summary>The stable name of this kind of event (<see cref="EventKind"/>), as <c>kind</c> in the JSON.</summary>
    [JsonIgnore]
    public abstract string Kind { get; }
}

/// <summary>The stable <c>kind</c> names of <see cref="BalancerEvent"/>s (docs/status-json.md).</summary>
internal static class EventKind
{
    public const string PeerAlive = "peer-alive";
    public const string PeerDead = "peer-dead";
    public const string PeerLeft = "peer-left";
    public const string PeerStateChanged = "peer-state";
    public const string ViewChanged = "view";
    public const string BucketsChanged = "buckets";
    public const string ReleasedAll = "released-all";
    public const string Stalled = "stall";
    public const string LinkDown = "link-down";
    public const string LinkUp = "link-up";
    public const string LocalStateChanged = "state";
    public const string DrainFinished = "drained";

    public const string SpoofSeen = "spoof";

    /// <summary>Every kind, in the order the documentation lists them: each has a counter from the start.</summary>
    public static readonly IReadOnlyList<string> All = [PeerAlive, PeerDead, PeerLeft, PeerStateChanged, ViewChanged, BucketsChanged, ReleasedAll, Stalled, LinkDown, LinkUp, LocalStateChanged, DrainFinished, SpoofSeen];
}

/// <summary>A peer is heard again (or for the first time) within the dead time.</summary>
internal sealed record PeerAlive(int Peer, AdvertState State) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.PeerAlive;
}

/// <summary>A peer was declared dead: no advert for <see cref="SilenceMs"/>, beyond the dead time.</summary>
internal sealed record PeerDead(int Peer, double SilenceMs, double DeadTimeMs) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.PeerDead;
}

/// <summary>A peer announced that it leaves (SIGTERM): taken as dead at once.</summary>
internal sealed record PeerLeft(int Peer) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.PeerLeft;
}

/// <summary>A live peer advertises another state.</summary>
internal sealed record PeerStateChanged(int Peer, AdvertState From, AdvertState To) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.PeerStateChanged;
}

/// <summary>This node's view (the active nodes) changed.</summary>
internal sealed record ViewChanged(IReadOnlyList<int> From, IReadOnlyList<int> To) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.ViewChanged;
}

/// <summary>The buckets this node accepts new flows for changed (a bucket moved).</summary>
internal sealed record BucketsChanged(int Held, int Buckets, int Claimed, int Released, int Pending) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.BucketsChanged;
}

/// <summary>This node released every bucket it held and listens again before claiming.</summary>
internal sealed record ReleasedAll(int Count, ReleaseCause Cause, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] int DeclaredBy = 0) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.ReleasedAll;
}

/// <summary>The daemon's loop did not run for <see cref="DurationMs"/>, longer than the lease; recorded when the stall ended.</summary>
internal sealed record Stalled(double DurationMs, double LeaseMs) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.Stalled;
}

/// <summary>The segment interface lost carrier: the node releases everything until it is back.</summary>
internal sealed record LinkDown(string Interface) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.LinkDown;
}

/// <summary>The segment interface has carrier again: the node listens for a dead time, then claims.</summary>
internal sealed record LinkUp(string Interface) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.LinkUp;
}

/// <summary>This node's own advertised state changed, and why.</summary>
/// <param name="State">The new state.</param>
/// <param name="Reason">Why.</param>
/// <param name="Health">With <see cref="StateReason.HealthFailing"/>: what the probe saw.</param>
/// <param name="Conflict">With <see cref="StateReason.Conflict"/>: what conflicts.</param>
/// <param name="Peer">With a conflict: the node id the conflicting advert carried (0 when unknown).</param>
/// <param name="Detail">The probe's or the conflict's own words, for people.</param>
internal sealed record LocalStateChanged(
    AdvertState State,
    StateReason Reason,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] HealthFailure Health = HealthFailure.None,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] ConflictKind Conflict = ConflictKind.None,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] int Peer = 0,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Detail = null) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.LocalStateChanged;
}

/// <summary>Released buckets in which this node has no established flow left stopped draining.</summary>
internal sealed record DrainFinished(int Buckets, int StillDraining) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.DrainFinished;
}

/// <summary>
/// Another host claims the VIP in ARP, or sends frames from the cluster MAC (docs/design.md#spoofing):
/// recorded at its first frame and then at most once per 10 s while it goes on.
/// </summary>
/// <param name="Spoof">What it did.</param>
/// <param name="Mac">The MAC it named: the claimed one, or the cluster MAC it sent from.</param>
/// <param name="Count">Frames of this kind seen since the daemon started.</param>
internal sealed record SpoofSeen(SpoofKind Spoof, string Mac, long Count) : BalancerEvent
{
    [JsonIgnore]
    public override string Kind => EventKind.SpoofSeen;
}

/// <summary>Why a node released every bucket at once.</summary>
internal enum ReleaseCause
{
    /// <summary>Its loop stalled beyond the lease: peers may have covered it.</summary>
    Stall,

    /// <summary>The segment interface lost carrier.</summary>
    LinkDown,

    /// <summary>A peer's advert no longer lists it alive: the peer covered its buckets.</summary>
    DeclaredDead,
}

/// <summary>Why this node took the state it advertises.</summary>
internal enum StateReason
{
    /// <summary>No health probe is configured: active from the start.</summary>
    Started,

    /// <summary>The first probe of the local service passed.</summary>
    HealthPassing,

    /// <summary>No probe has passed yet: no clients before the service answers.</summary>
    WaitingForFirstProbe,

    /// <summary>The probe failed (see <see cref="LocalStateChanged.Health"/>).</summary>
    HealthFailing,

    /// <summary>The probe passes again, rise times in a row.</summary>
    HealthPassingAgain,

    /// <summary><c>l2bal drain</c>.</summary>
    DrainRequested,

    /// <summary><c>l2bal undrain</c>.</summary>
    UndrainRequested,

    /// <summary>A conflicting advert makes this node yield (see <see cref="LocalStateChanged.Conflict"/>).</summary>
    Conflict,

    /// <summary>No conflicting advert for a dead time.</summary>
    ConflictEnded,
}

/// <summary>What a failed health probe saw.</summary>
internal enum HealthFailure
{
    /// <summary>No failure.</summary>
    None,

    /// <summary>No probe has run yet.</summary>
    NotProbedYet,

    /// <summary>The connect was refused, or the kernel lists no listening socket: the service is gone.</summary>
    NothingListens,

    /// <summary>No answer within the probe timeout (a hung or overloaded service).</summary>
    Timeout,

    /// <summary>The service closed the connection during the greeting.</summary>
    Closed,

    /// <summary>A greeting answer that is not SOCKS5 "no authentication" or "username".</summary>
    WrongAnswer,

    /// <summary>The probe command exited non-zero.</summary>
    CommandFailed,

    /// <summary>Any other socket error (see the detail).</summary>
    SocketError,
}

/// <summary>Why a node yields to another's adverts.</summary>
internal enum ConflictKind
{
    /// <summary>No conflict.</summary>
    None,

    /// <summary>Another node, started earlier, runs with this node's id.</summary>
    DuplicateNodeId,

    /// <summary>A node started earlier runs with other cluster settings (VIP, buckets, seed, node count).</summary>
    OtherSettings,

    /// <summary>Adverts on the segment fail authentication and this node has verified none.</summary>
    UnverifiedKey,
}

/// <summary>Writes an enum as its member name in kebab case (<c>HealthFailing</c> → <c>health-failing</c>), as docs/status-json.md lists them.</summary>
internal sealed class KebabCaseEnumConverter<TEnum>() : JsonStringEnumConverter<TEnum>(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false)
    where TEnum : struct, Enum;
