using System.Text.Json.Serialization;
using L2Balance.Balancer.Kernel;
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

    public required string Vip { get; init; }

    public required IReadOnlyList<string> Services { get; init; }

    public required string ClusterMac { get; init; }

    public required string MacMode { get; init; }

    public required int Buckets { get; init; }

    public required int Held { get; init; }

    public required int Draining { get; init; }

    public required IReadOnlyList<int> View { get; init; }

    public required IReadOnlyDictionary<string, int> Owners { get; init; }

    public required PortSliceStatus PortSlice { get; init; }

    public required IReadOnlyList<PeerStatus> Peers { get; init; }

    public required CounterStatus Counters { get; init; }

    public KernelCounters? Kernel { get; init; }

    public required ControlStatus Control { get; init; }

    public required long LastEventSeq { get; init; }

    public required IReadOnlyList<BalancerEvent> Events { get; init; }
}

/// <summary>The local service's health.</summary>
/// <param name="Healthy">Whether the node may take clients.</param>
/// <param name="Probe">The probe, in words (<c>none</c> when none is configured).</param>
/// <param name="Failure">What the last failed probe saw (<c>none</c> while healthy).</param>
/// <param name="Detail">The last failure in words, while unhealthy.</param>
internal sealed record HealthStatus(
    bool Healthy,
    string Probe,
    [property: JsonConverter(typeof(KebabCaseEnumConverter<HealthFailure>))] HealthFailure Failure,
    string? Detail);

/// <summary>Why the node yields, while it does.</summary>
internal sealed record ConflictStatus(
    [property: JsonConverter(typeof(KebabCaseEnumConverter<ConflictKind>))] ConflictKind Kind,
    int Peer,
    string Detail);

/// <summary>This node's port slice and whether the kernel accepts it now.</summary>
internal sealed record PortSliceStatus(int Low, int High, bool Granted);

/// <summary>A peer as this node last heard it.</summary>
internal sealed record PeerStatus(
    int NodeId,
    [property: JsonConverter(typeof(KebabCaseEnumConverter<AdvertState>))] AdvertState State,
    bool Alive,
    long LastHeardMs,
    uint Held);

/// <summary>The daemon's counters (each one exists from the start).</summary>
internal sealed record CounterStatus(
    long AdvertsSent,
    long AdvertsReceived,
    long AdvertSendFailures,
    IReadOnlyDictionary<string, long> AdvertsRejected,
    long OwnershipChanges,
    long LoopWakeups,
    IReadOnlyDictionary<string, long> Events);

/// <summary>The control socket: who may change the node over it, and what it refused or failed.</summary>
/// <param name="Socket">The socket: <c>@l2bal</c> (abstract, this network namespace) or the path of <c>--control</c>.</param>
/// <param name="ChangeGroup">The group whose members may drain and undrain besides root; null: root only.</param>
/// <param name="Refused">Requests refused for want of privilege.</param>
/// <param name="AcceptFailures">Accepts that failed (out of descriptors) and were retried.</param>
internal sealed record ControlStatus(string Socket, string? ChangeGroup, long Refused, long AcceptFailures);

/// <summary>Source-generated JSON for the status document (no reflection: ready for Native AOT).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    WriteIndented = true,
    Converters = [typeof(KebabCaseEnumConverter<AdvertState>), typeof(KebabCaseEnumConverter<ReleaseCause>),
        typeof(KebabCaseEnumConverter<StateReason>), typeof(KebabCaseEnumConverter<HealthFailure>), typeof(KebabCaseEnumConverter<ConflictKind>)])]
[JsonSerializable(typeof(StatusSnapshot))]
internal sealed partial class StatusJsonContext : JsonSerializerContext;
