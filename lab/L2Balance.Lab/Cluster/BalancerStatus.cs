using System.Globalization;
using System.Text.Json;

namespace L2Balance.Lab.Cluster;

/// <summary>
/// One node's <c>l2bal status --json</c> (docs/status-json.md, schema version 1), the fields the
/// lab tests, the demo and the benchmarks read. Facts come from here, never from log lines.
/// </summary>
/// <param name="NodeId">The node that answered.</param>
/// <param name="State">The state it advertises: active, unhealthy, draining.</param>
/// <param name="Healthy">Whether its local service passes the probe.</param>
/// <param name="HealthFailure">What the last failed probe saw (none while healthy).</param>
/// <param name="Conflict">Why it yields to another node's adverts (a conflict kind), or null.</param>
/// <param name="Buckets">B.</param>
/// <param name="Held">Buckets it takes new flows for.</param>
/// <param name="Draining">Released buckets still carrying its flows.</param>
/// <param name="Owners">Its bucket map: node id (or "none") → buckets.</param>
/// <param name="PeerStates">Each peer's advertised state, or "dead" when not alive.</param>
/// <param name="AdvertsRejected">Rejected adverts by reason.</param>
/// <param name="EventCounts">Events recorded since start, by kind.</param>
/// <param name="LastEventSeq">The newest event's sequence number.</param>
/// <param name="Events">The recent events, oldest first.</param>
/// <param name="Json">The whole document, for failure messages.</param>
public sealed record BalancerStatus(
    int NodeId,
    string State,
    bool Healthy,
    string HealthFailure,
    string? Conflict,
    int Buckets,
    int Held,
    int Draining,
    IReadOnlyDictionary<string, int> Owners,
    IReadOnlyDictionary<int, string> PeerStates,
    IReadOnlyDictionary<string, long> AdvertsRejected,
    IReadOnlyDictionary<string, long> EventCounts,
    long LastEventSeq,
    IReadOnlyList<BalancerStatusEvent> Events,
    string Json)
{
    /// <summary>The schema version this reader understands (later versions only add fields).</summary>
    public const int SchemaVersion = 1;

    /// <summary>
    /// Polls the statuses of <paramref name="nodes"/> (through <paramref name="status"/>) every
    /// <paramref name="period"/> until <paramref name="condition"/> holds; on the deadline throws
    /// with the last statuses and <paramref name="describe"/>'s picture of the lab.
    /// </summary>
    public static async Task<IReadOnlyDictionary<int, BalancerStatus>> WaitForAsync(
        IEnumerable<int> nodes, Func<int, Task<BalancerStatus>> status, Func<IReadOnlyDictionary<int, BalancerStatus>, bool> condition,
        string what, TimeSpan timeout, TimeSpan period, Func<string> describe)
    {
        ArgumentNullException.ThrowIfNull(status);
        ArgumentNullException.ThrowIfNull(condition);
        ArgumentNullException.ThrowIfNull(describe);
        var ids = nodes.ToArray();
        var deadline = DateTime.UtcNow + timeout;
        var last = "(no status yet)";
        while (true)
        {
            try
            {
                var statuses = new Dictionary<int, BalancerStatus>();
                foreach (var k in ids)
                {
                    statuses[k] = await status(k).ConfigureAwait(false);
                }

                if (condition(statuses))
                {
                    return statuses;
                }

                last = string.Join('\n', statuses.Values.Select(s => s.Json));
            }
            catch (Exception e) when (e is InvalidOperationException or JsonException or KeyNotFoundException)
            {
                last = e.Message;
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"not reached within {timeout.TotalSeconds:0} s: {what}\nlast status:\n{last}\n{describe()}");
            }

            await Task.Delay(period).ConfigureAwait(false);
        }
    }

    /// <summary>Parses the document; throws <see cref="JsonException"/> or <see cref="KeyNotFoundException"/> on anything else.</summary>
    public static BalancerStatus Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        if (root.GetProperty("schemaVersion").GetInt32() < SchemaVersion)
        {
            throw new JsonException($"status schema {root.GetProperty("schemaVersion")} is older than {SchemaVersion}");
        }
        var health = root.GetProperty("health");
        var counters = root.GetProperty("counters");
        return new BalancerStatus(
            root.GetProperty("nodeId").GetInt32(),
            root.GetProperty("state").GetString() ?? string.Empty,
            health.GetProperty("healthy").GetBoolean(),
            health.GetProperty("failure").GetString() ?? string.Empty,
            root.GetProperty("conflict") is { ValueKind: JsonValueKind.Object } conflict ? conflict.GetProperty("kind").GetString() : null,
            root.GetProperty("buckets").GetInt32(),
            root.GetProperty("held").GetInt32(),
            root.GetProperty("draining").GetInt32(),
            root.GetProperty("owners").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32()),
            root.GetProperty("peers").EnumerateArray().ToDictionary(
                p => p.GetProperty("nodeId").GetInt32(),
                p => p.GetProperty("alive").GetBoolean() ? p.GetProperty("state").GetString() ?? string.Empty : "dead"),
            Counts(counters.GetProperty("advertsRejected")),
            Counts(counters.GetProperty("events")),
            root.GetProperty("lastEventSeq").GetInt64(),
            [.. root.GetProperty("events").EnumerateArray().Select(BalancerStatusEvent.From)],
            json)
        {
            Segment = root.TryGetProperty("segment", out var segment) ? Flatten(segment, string.Empty) : new Dictionary<string, long>(),
            Probes = health.TryGetProperty("probes", out var probes)
                ? probes.EnumerateArray().ToDictionary(p => p.GetProperty("probe").GetString() ?? string.Empty, p => p.GetProperty("failure").GetString() ?? string.Empty)
                : new Dictionary<string, string>(),
            Wake = health.TryGetProperty("wake", out var wake) ? Flatten(wake, string.Empty) : new Dictionary<string, long>(),
            Slices = root.TryGetProperty("slices", out var slices)
                ? slices.EnumerateArray().ToDictionary(n => n.GetProperty("nodeId").GetInt32(), n => (n.GetProperty("low").GetInt32(), n.GetProperty("high").GetInt32()))
                : new Dictionary<int, (int, int)>(),
        };
    }

    /// <summary>
    /// The port-unreachable wake's counters (<c>health.wake</c>: <c>wakes</c>, <c>ignoredFailing</c>…,
    /// docs/status-json.md); empty from a daemon without the field.
    /// </summary>
    public IReadOnlyDictionary<string, long> Wake { get; init; } = new Dictionary<string, long>();

    /// <summary>Every node's port slice as this node computes it (<c>slices</c>): node id → (low, high); empty from a daemon without the field.</summary>
    public IReadOnlyDictionary<int, (int Low, int High)> Slices { get; init; } = new Dictionary<int, (int, int)>();

    /// <summary>Each health probe (<c>health.probes</c>) and its failure (<c>none</c> while it passes); empty from a daemon without the field.</summary>
    public IReadOnlyDictionary<string, string> Probes { get; init; } = new Dictionary<string, string>();

    /// <summary>A number among <c>counters</c> (<c>firstAdvertMs</c>, <c>longestStepMs</c>…); NaN when this daemon's schema has no such field.</summary>
    public double Counter(string name)
    {
        using var doc = JsonDocument.Parse(Json);
        return doc.RootElement.GetProperty("counters").TryGetProperty(name, out var value) ? value.GetDouble() : double.NaN;
    }

    /// <summary>A packet counter of the kernel filter (<c>kernel.droppedOtherSlice</c>…); 0 when this daemon's schema has no such field.</summary>
    public long Kernel(string name)
    {
        using var doc = JsonDocument.Parse(Json);
        return doc.RootElement.TryGetProperty("kernel", out var kernel) && kernel.ValueKind == JsonValueKind.Object
            && kernel.TryGetProperty(name, out var value) ? value.GetInt64() : 0;
    }

    /// <summary>The ip6 table's share of a kernel filter counter (<c>kernel.ipv6.droppedOtherSlice</c>…); 0 without an IPv6 VIP.</summary>
    public long Kernel6(string name)
    {
        using var doc = JsonDocument.Parse(Json);
        return doc.RootElement.TryGetProperty("kernel", out var kernel) && kernel.ValueKind == JsonValueKind.Object
            && kernel.TryGetProperty("ipv6", out var ipv6) && ipv6.ValueKind == JsonValueKind.Object
            && ipv6.TryGetProperty(name, out var value) ? value.GetInt64() : 0;
    }

    /// <summary>
    /// The <c>segment</c> counters (ARP answers, announcements, spoofing seen, socket errors) by
    /// dotted name: <c>arpReplies</c>, <c>spoofs.vip-claimed</c>, <c>socketErrors.arp</c>; empty
    /// when the daemon reports none.
    /// </summary>
    public IReadOnlyDictionary<string, long> Segment { get; init; } = new Dictionary<string, long>();

    /// <summary>The <see cref="Segment"/> counter <paramref name="name"/>; throws when the daemon does not report it.</summary>
    public long SegmentCount(string name) =>
        Segment.TryGetValue(name, out var n) ? n : throw new KeyNotFoundException($"status of node {NodeId} has no segment counter '{name}'");

    /// <summary>Adverts rejected for <paramref name="reason"/> (an AdvertRejection name).</summary>
    public long Rejected(string reason) => AdvertsRejected.TryGetValue(reason, out var n) ? n : 0;

    /// <summary>Events of <paramref name="kind"/> recorded since the daemon started.</summary>
    public long Count(string kind) => EventCounts.TryGetValue(kind, out var n) ? n : 0;

    /// <summary>Buckets node <paramref name="nodeId"/> owns in this node's view.</summary>
    public int OwnedBy(int nodeId) => Owners.TryGetValue(nodeId.ToString(CultureInfo.InvariantCulture), out var n) ? n : 0;

    /// <summary>The kept events newer than <paramref name="seq"/> (a mark taken from an earlier <see cref="LastEventSeq"/>).</summary>
    public IEnumerable<BalancerStatusEvent> EventsAfter(long seq) => Events.Where(e => e.Seq > seq);

    private static Dictionary<string, long> Flatten(JsonElement element, string prefix)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var p in element.EnumerateObject())
        {
            if (p.Value.ValueKind == JsonValueKind.Number)
            {
                counts[prefix + p.Name] = p.Value.GetInt64();
            }
            else if (p.Value.ValueKind == JsonValueKind.Object)
            {
                foreach (var (name, n) in Flatten(p.Value, $"{prefix}{p.Name}."))
                {
                    counts[name] = n;
                }
            }
        }
        return counts;
    }

    private static Dictionary<string, long> Counts(JsonElement map) =>
        map.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64(), StringComparer.Ordinal);
}

/// <summary>One recent event of a node (docs/status-json.md, <c>events[]</c>): its kind, number, time and its own fields.</summary>
public sealed record BalancerStatusEvent(string Kind, long Seq, DateTime Time, JsonElement Fields)
{
    public static BalancerStatusEvent From(JsonElement e) =>
        new(e.GetProperty("kind").GetString() ?? string.Empty, e.GetProperty("seq").GetInt64(), e.GetProperty("time").GetDateTime().ToUniversalTime(), e.Clone());

    /// <summary>A number field (<c>peer</c>, <c>held</c>, …), or null when absent.</summary>
    public double? Number(string name) => Fields.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    /// <summary>A string field (<c>reason</c>, <c>health</c>, <c>cause</c>, …), or null when absent.</summary>
    public string? Text(string name) => Fields.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>The peer the event is about (<c>peer</c>), or 0.</summary>
    public int Peer => (int)(Number("peer") ?? 0);

    public override string ToString() => $"#{Seq} {Time:HH:mm:ss.fff} {Fields.GetRawText()}";
}
