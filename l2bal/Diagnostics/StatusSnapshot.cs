using System.Text.Json.Serialization;
using L2Balance.Balancer.Health;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Diagnostics;

/// <summary>
/// What <c>l2bal status</c> reports, made on the daemon's loop (which owns the state) and completed
/// with the kernel's counters off it. Its JSON form is a documented, versioned schema
/// (docs/status-json.md): fields are added in later versions, never renamed or removed without
/// raising <see cref="SchemaVersion"/>.
/// </summary>
internal sealed record StatusSnapshot
{
    /// <summary>The version of this document's schema.</summary>
    public const int CurrentSchemaVersion = 1;

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;

    public required DateTime Time { get; init; }

    public required double UptimeMs { get; init; }

    public required int NodeId { get; init; }

    public required int NodeCount { get; init; }

    [JsonConverter(typeof(KebabCaseEnumConverter<AdvertState>))]
    public required AdvertState State { get; init; }

    public required HealthStatus Health { get; init; }

    public required ConflictStatus? Conflict { get; init; }

    /// <summary>The IPv4 VIP; null when the cluster has only an IPv6 one.</summary>
    public required string? Vip { get; init; }

    /// <summary>The IPv6 VIP; null when the cluster has none.</summary>
    public required string? Vip6 { get; init; }

    public required IReadOnlyList<string> Services { get; init; }

    /// <summary>The affinity rules as given (<c>udp/53=none</c>); a service without one hashes the source address.</summary>
    public IReadOnlyList<string> Affinity { get; init; } = [];

    public required string ClusterMac { get; init; }

    public required string MacMode { get; init; }

    public required int Buckets { get; init; }

    public required int Held { get; init; }

    public required int Draining { get; init; }

    public required IReadOnlyList<int> View { get; init; }

    public required IReadOnlyDictionary<string, int> Owners { get; init; }

    /// <summary>This node's configured weight (--weight).</summary>
    public int Weight { get; init; } = Cluster.Ownership.DefaultWeight;

    /// <summary>Each node's weight in the view (node id as a string → weight): what <see cref="Owners"/> was computed from.</summary>
    public IReadOnlyDictionary<string, int> Weights { get; init; } = new Dictionary<string, int>();

    public required PortSliceStatus PortSlice { get; init; }

    /// <summary>Every node's port slice (a pure function of id and N: docs/design.md#port-slices).</summary>
    public IReadOnlyList<NodeSliceStatus> Slices { get; init; } = [];

    public required IReadOnlyList<PeerStatus> Peers { get; init; }

    public required CounterStatus Counters { get; init; }

    public KernelCounters? Kernel { get; init; }

    /// <summary>How this node's adverts go out and which keys it hears (docs/design.md#key-rollover).</summary>
    public AdvertStatus? Adverts { get; init; }

    /// <summary>ARP answers, announcements, spoofing seen and packet socket errors (docs/status-json.md, <c>segment</c>).</summary>
    public SegmentStatus? Segment { get; init; }

    public required ControlStatus Control { get; init; }

    /// <summary>Live migration (issue 19), only with <c>--migrate</c>: null otherwise, so the document is as before.</summary>
    public MigrationStatus? Migrations { get; init; }

    public required long LastEventSeq { get; init; }

    public required IReadOnlyList<BalancerEvent> Events { get; init; }
}

/// <summary>The local service's health.</summary>
/// <param name="Healthy">Whether the node may take clients.</param>
/// <param name="Probe">The probe, in words (<c>none</c> when none is configured).</param>
/// <param name="Failure">What the last failed probe saw (<c>none</c> while healthy).</param>
/// <param name="Detail">The last failure in words, while unhealthy.</param>
/// <param name="Probes">Each probe's own verdict, in the order given (empty without probes).</param>
/// <param name="Wake">The port-unreachable wake of the dns:// probes (docs/design.md#health).</param>
internal sealed record HealthStatus(
    bool Healthy,
    string Probe,
    [property: JsonConverter(typeof(KebabCaseEnumConverter<HealthFailure>))] HealthFailure Failure,
    string? Detail,
    IReadOnlyList<ProbeStatus> Probes,
    ProbeWakeCounters Wake);

/// <summary>One health probe: the probe in words, whether it passes, and while it does not, what it last saw.</summary>
internal sealed record ProbeStatus(
    string Probe,
    bool Healthy,
    [property: JsonConverter(typeof(KebabCaseEnumConverter<HealthFailure>))] HealthFailure Failure,
    string? Detail);

/// <summary>Why the node yields, while it does.</summary>
internal sealed record ConflictStatus(
    [property: JsonConverter(typeof(KebabCaseEnumConverter<ConflictKind>))] ConflictKind Kind,
    int Peer,
    string Detail);

/// <summary>This node's port slice and whether the kernel accepts it now.</summary>
internal sealed record PortSliceStatus(int Low, int High, bool Granted);

/// <summary>One node's port slice, for <c>status</c> (l2proxy's --port-range on that node).</summary>
internal sealed record NodeSliceStatus(int NodeId, int Low, int High);

/// <summary>A peer as this node last heard it.</summary>
internal sealed record PeerStatus(
    int NodeId,
    [property: JsonConverter(typeof(KebabCaseEnumConverter<AdvertState>))] AdvertState State,
    bool Alive,
    long LastHeardMs,
    uint Held,
    int Version = 0,
    string? KeyId = null,
    string? AlsoAccepts = null);

/// <summary>This node's advert version and keys, and the foreign key ids it hears.</summary>
/// <param name="Version">The version of its last advert (1 while a live peer speaks only version 1).</param>
/// <param name="HighestVersion">The highest version it speaks (--advert-version).</param>
/// <param name="SigningKeyId">The id of the key its last advert was signed with.</param>
/// <param name="AcceptedKeyIds">The ids of the keys it verifies with: the current key, then the previous one during a key change.</param>
/// <param name="ForeignKeyIds">Key ids heard within the last dead time that it does not hold.</param>
internal sealed record AdvertStatus(int Version, int HighestVersion, string SigningKeyId, IReadOnlyList<string> AcceptedKeyIds, IReadOnlyList<ForeignKeyStatus> ForeignKeyIds);

/// <summary>A key id heard that this node does not hold (<c>v1</c>: a version-1 advert no key verifies, which names none).</summary>
internal sealed record ForeignKeyStatus(string KeyId, string Source, long LastHeardMs, long Adverts);

/// <summary>The daemon's counters (each one exists from the start).</summary>
internal sealed record CounterStatus(
    long AdvertsSent,
    long AdvertsReceived,
    long AdvertSendFailures,
    IReadOnlyDictionary<string, long> AdvertsRejected,
    long OwnershipChanges,
    long LoopWakeups,
    IReadOnlyDictionary<string, long> Events,
    double FirstAdvertMs,
    double LongestStepMs,
    double LongestEarlyStepMs,
    long AdvertsLate = 0,
    double LargestAdvertGapMs = 0,
    long LeaseLapses = 0,
    long AdvertBudgetSpent = 0,
    long AdvertKernelDrops = 0);

/// <summary>
/// What the node answers and sees on its segment besides adverts (docs/design.md#spoofing): every
/// counter exists from the start, keyed maps list every key.
/// </summary>
/// <param name="ArpRequests">Who-has for the VIP seen (answered or not).</param>
/// <param name="ArpReplies">Who-has answered.</param>
/// <param name="ArpIgnored">ARP frames not answered, by <see cref="Net.ArpIgnoreReason"/> name (the rate limits among them).</param>
/// <param name="ArpSendErrors">Replies and gratuitous ARPs the kernel refused.</param>
/// <param name="Announcements">Gratuitous ARPs sent: at start, when the node starts holding, and in answer to spoofing.</param>
/// <param name="Spoofs">Spoofed frames seen, by kind (<c>vip-claimed</c>, <c>cluster-mac-source</c>).</param>
/// <param name="SocketErrors">Errors the packet sockets returned (ENETDOWN when the interface goes down), by socket: <c>arp</c>, <c>adverts</c>, <c>watch</c>, <c>nd</c>.</param>
/// <param name="NdSolicitations">Neighbour solicitations for the IPv6 VIP seen (answered or not); 0 without one.</param>
/// <param name="NdAnswers">Solicitations answered.</param>
/// <param name="NdIgnored">ND frames not answered, by <see cref="Net.ArpIgnoreReason"/> name (<c>BadArp</c>: malformed, see <paramref name="NdRejected"/>).</param>
/// <param name="NdRejected">Malformed ND packets, by <see cref="Protocol.NeighborRejection"/> name.</param>
/// <param name="NdAnnouncements">Unsolicited neighbour advertisements sent (with each gratuitous ARP, or alone with an IPv6 VIP alone).</param>
/// <param name="NdClaims">Advertisements for the IPv6 VIP (or solicitations from it) naming another MAC: ND's share of <c>vip-claimed</c>.</param>
internal sealed record SegmentStatus(
    long ArpRequests,
    long ArpReplies,
    IReadOnlyDictionary<string, long> ArpIgnored,
    long ArpSendErrors,
    long Announcements,
    IReadOnlyDictionary<string, long> Spoofs,
    IReadOnlyDictionary<string, long> SocketErrors,
    long NdSolicitations = 0,
    long NdAnswers = 0,
    IReadOnlyDictionary<string, long>? NdIgnored = null,
    IReadOnlyDictionary<string, long>? NdRejected = null,
    long NdAnnouncements = 0,
    long NdClaims = 0);

/// <summary>The control socket: who may change the node over it, and what it refused or failed.</summary>
/// <param name="Socket">The socket: <c>@l2bal</c> (abstract, this network namespace) or the path of <c>--control</c>.</param>
/// <param name="ChangeGroup">The group whose members may drain and undrain besides root; null: root only.</param>
/// <param name="Refused">Requests refused for want of privilege.</param>
/// <param name="AcceptFailures">Accepts that failed (out of descriptors) and were retried.</param>
internal sealed record ControlStatus(string Socket, string? ChangeGroup, long Refused, long AcceptFailures);

/// <summary>Sessions moved to peers (docs/status-json.md, <c>migrations</c>).</summary>
/// <param name="NodeAddress">This node's advertised address(es) for migration.</param>
/// <param name="InProgress">Sessions asked to move whose answer has not come yet.</param>
/// <param name="Done">Sessions moved to a peer.</param>
/// <param name="Refused">Sessions that stayed, by reason (every reason listed).</param>
/// <param name="ProxyErrors">Requests to the local l2proxy's migration socket that failed.</param>
/// <param name="ConntrackDeleted">Conntrack entries of moved flows deleted at move time.</param>
/// <param name="ConntrackMissing">Moved flows that had no conntrack entry to delete.</param>
/// <param name="ConntrackErrors">Moved flows whose entry could not be deleted.</param>
/// <param name="MovedOutResolved">Sessions whose moved_out flows l2bal resolved on a failure path (proxy gone, error mid-batch).</param>
/// <param name="MovedOutLeft">Sessions whose flows the kernel refused to take out of moved_out: they leave it on the set's timeout.</param>
/// <param name="PeerAddresses">Each peer's advertised address(es), by node id (peers that migrate).</param>
internal sealed record MigrationStatus(string NodeAddress, long InProgress, long Done, IReadOnlyDictionary<string, long> Refused, long ProxyErrors,
    long ConntrackDeleted, long ConntrackMissing, long ConntrackErrors, long MovedOutResolved, long MovedOutLeft,
    IReadOnlyDictionary<string, string> PeerAddresses);

/// <summary>Source-generated JSON for the status document (no reflection: ready for Native AOT).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    WriteIndented = true,
    Converters = [typeof(KebabCaseEnumConverter<AdvertState>), typeof(KebabCaseEnumConverter<ReleaseCause>),
        typeof(KebabCaseEnumConverter<StateReason>), typeof(KebabCaseEnumConverter<HealthFailure>), typeof(KebabCaseEnumConverter<ConflictKind>),
        typeof(KebabCaseEnumConverter<SpoofKind>)])]
[JsonSerializable(typeof(StatusSnapshot))]
internal sealed partial class StatusJsonContext : JsonSerializerContext;
