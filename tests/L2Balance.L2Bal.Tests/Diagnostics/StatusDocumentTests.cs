using System.Text.Json;
using System.Text.RegularExpressions;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Health;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.L2Bal.Tests.Diagnostics;

/// <summary>
/// <c>l2bal status --json</c> is a documented, versioned contract (docs/status-json.md) that tests,
/// benches, operators and agents read: its names and forms are checked here, and every field and
/// event kind it can carry must be in the document.
/// </summary>
public partial class StatusDocumentTests
{
    private static readonly DateTime T0 = new(2026, 12, 2, 18, 0, 0, DateTimeKind.Utc);

    internal static StatusSnapshot Sample(EventJournal journal) => new()
    {
        Time = T0,
        UptimeMs = 1234.5,
        NodeId = 2,
        NodeCount = 3,
        State = AdvertState.Unhealthy,
        Health = new HealthStatus(false, "socks5://198.18.0.10:1080", HealthFailure.NothingListens, "nothing listens on 198.18.0.10:1080",
            [new ProbeStatus("socks5://198.18.0.10:1080", false, HealthFailure.NothingListens, "nothing listens on 198.18.0.10:1080")],
            new ProbeWakeCounters(true, 3, 1, 2, 5, 0, 0, 0)),
        Conflict = new ConflictStatus(ConflictKind.DuplicateNodeId, 2, "another node runs with node id 2"),
        Vip = "198.18.0.10",
        Vip6 = null,
        Services = ["tcp/1080"],
        ClusterMac = "01:00:5e:12:00:0a",
        MacMode = "multicast",
        Buckets = 4096,
        Held = 0,
        Draining = 3,
        View = [1, 3],
        Owners = new Dictionary<string, int> { ["1"] = 2048, ["2"] = 0, ["3"] = 2048, ["none"] = 0 },
        PortSlice = new PortSliceStatus(40000, 49999, true),
        Peers = [new PeerStatus(1, AdvertState.Active, true, 12, 2048), new PeerStatus(3, AdvertState.Draining, false, 500, 0)],
        Counters = new CounterStatus(10, 20, 1, new Dictionary<string, long> { ["BadHmac"] = 4 }, 5, 100,
            EventKind.All.ToDictionary(k => k, _ => 1L), 123.4, 2.5, 1.5),
        Kernel = new KernelCounters(1, 2, 3, 4, 5, 6, 7, 8, 9, 10) { Ipv6 = new KernelCounters(1, 1, 0, 0, 2, 0, 0, 3, 9, 0) },
        Adverts = new AdvertStatus(2, 2, "0a0b0c0d", ["0a0b0c0d", "01020304"], [new ForeignKeyStatus("deadbeef", "02:00:00:00:00:66", 12, 40)]),
        Segment = new SegmentStatus(30, 29, Enum.GetValues<ArpIgnoreReason>().ToDictionary(r => r.ToString(), _ => 1L), 0, 4,
            new Dictionary<string, long> { ["vip-claimed"] = 7, ["cluster-mac-source"] = 0 },
            new Dictionary<string, long> { ["arp"] = 1, ["adverts"] = 1, ["watch"] = 0 }),
        LastEventSeq = journal.LastSeq,
        Events = journal.Recent(),
        Control = new ControlStatus("@l2bal", "l2admin", 2, 1),
        Migrations = new MigrationStatus("198.18.0.2:1081", 1, 5, new Dictionary<string, long> { ["no-key"] = 2 }, 0, 4, 1, 0, 3, 0,
            new Dictionary<string, string> { ["3"] = "198.18.0.3:1081" }),
    };

    /// <summary>One event of every kind, in the order of <see cref="EventKind.All"/>.</summary>
    internal static IReadOnlyList<BalancerEvent> OneOfEach() =>
    [
        new PeerAlive(1, AdvertState.Active),
        new PeerDead(3, 121.5, 120),
        new PeerLeft(3),
        new PeerStateChanged(1, AdvertState.Active, AdvertState.Draining),
        new ViewChanged([1, 2, 3], [1, 2]),
        new BucketsChanged(2048, 4096, 683, 0, 0),
        new ReleasedAll(1365, ReleaseCause.DeclaredDead, 1),
        new Stalled(95.2, 80),
        new LinkDown("eth0"),
        new LinkUp("eth0"),
        new LocalStateChanged(AdvertState.Unhealthy, StateReason.HealthFailing, HealthFailure.Timeout, Detail: "no answer within 500 ms"),
        new DrainFinished(12, 0),
        new SpoofSeen(SpoofKind.VipClaimed, "02:00:00:00:00:15", 7),
    ];

    private static JsonElement Render(StatusSnapshot snapshot) => JsonDocument.Parse(StatusRenderer.Json(snapshot)).RootElement.Clone();

    [Fact]
    public void Json_TopLevel_IsCamelCaseWithSchemaVersionOne()
    {
        var root = Render(Sample(new EventJournal()));
        Assert.Equal(1, root.GetProperty("schemaVersion").GetInt32());
        Assert.Equal(2, root.GetProperty("nodeId").GetInt32());
        Assert.Equal("unhealthy", root.GetProperty("state").GetString());
        Assert.Equal("nothing-listens", root.GetProperty("health").GetProperty("failure").GetString());
        Assert.Equal("duplicate-node-id", root.GetProperty("conflict").GetProperty("kind").GetString());
        Assert.Equal([1, 3], root.GetProperty("view").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("draining", root.GetProperty("peers")[1].GetProperty("state").GetString());
        Assert.False(root.GetProperty("peers")[1].GetProperty("alive").GetBoolean());
        Assert.Equal(4, root.GetProperty("counters").GetProperty("advertsRejected").GetProperty("BadHmac").GetInt64());
        Assert.Equal(8, root.GetProperty("kernel").GetProperty("droppedMidFlow").GetInt64());
        Assert.Equal(T0, root.GetProperty("time").GetDateTime().ToUniversalTime());
    }

    [Fact]
    public void Json_HealthWake_CarriesTheWakeCounters()
    {
        var wake = Render(Sample(new EventJournal())).GetProperty("health").GetProperty("wake");
        Assert.True(wake.GetProperty("listening").GetBoolean());
        Assert.Equal(3, wake.GetProperty("wakes").GetInt64());
        Assert.Equal(2, wake.GetProperty("ignoredRateLimited").GetInt64());
        Assert.Equal(5, wake.GetProperty("ignoredFailing").GetInt64());
    }

    [Fact]
    public void JsonAndMetrics_Migrations_CarryTheMovedOutResolutions()
    {
        var sample = Sample(new EventJournal());
        var migrations = Render(sample).GetProperty("migrations");

        Assert.Equal(3, migrations.GetProperty("movedOutResolved").GetInt64());
        Assert.Equal(0, migrations.GetProperty("movedOutLeft").GetInt64());
        var metrics = StatusRenderer.Prometheus(sample, TimeSpan.Zero);
        Assert.Contains("l2bal_migration_moved_out_resolved_total 3\n", metrics, StringComparison.Ordinal);
        Assert.Contains("l2bal_migration_moved_out_left_total 0\n", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_KernelOfADualStackNode_CarriesTheIp6TablesShareBesideTheTotals()
    {
        var kernel = Render(Sample(new EventJournal())).GetProperty("kernel");
        Assert.Equal(8, kernel.GetProperty("droppedMidFlow").GetInt64());
        Assert.Equal(3, kernel.GetProperty("ipv6").GetProperty("droppedMidFlow").GetInt64());
        Assert.Equal(JsonValueKind.Null, kernel.GetProperty("ipv6").GetProperty("ipv6").ValueKind);
    }

    [Fact]
    public void JsonAndMetrics_SegmentOfAnIpv6Vip_CarryTheNdCountersInTheShapeOfArps()
    {
        var sample = Sample(new EventJournal());
        var snapshot = sample with
        {
            Vip = null,
            Vip6 = "fdc6:1200:10::a",
            Segment = sample.Segment! with
            {
                NdSolicitations = 12,
                NdAnswers = 11,
                NdIgnored = Enum.GetValues<ArpIgnoreReason>().ToDictionary(r => r.ToString(), r => r == ArpIgnoreReason.RequesterLimit ? 1L : 0L),
                NdRejected = new Dictionary<string, long> { ["BadChecksum"] = 2 },
                NdAnnouncements = 3,
                NdClaims = 4,
            },
        };
        var segment = Render(snapshot).GetProperty("segment");

        Assert.Equal(12, segment.GetProperty("ndSolicitations").GetInt64());
        Assert.Equal(11, segment.GetProperty("ndAnswers").GetInt64());
        Assert.Equal(1, segment.GetProperty("ndIgnored").GetProperty("RequesterLimit").GetInt64());
        Assert.Equal(2, segment.GetProperty("ndRejected").GetProperty("BadChecksum").GetInt64());
        Assert.Equal(3, segment.GetProperty("ndAnnouncements").GetInt64());
        Assert.Equal(4, segment.GetProperty("ndClaims").GetInt64());
        var metrics = StatusRenderer.Prometheus(snapshot, TimeSpan.Zero);
        Assert.Contains("l2bal_nd_solicitations_total 12\n", metrics, StringComparison.Ordinal);
        Assert.Contains("l2bal_nd_claims_total 4\n", metrics, StringComparison.Ordinal);
        Assert.Contains("l2bal_nd_ignored_total{reason=\"RequesterLimit\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("nd: 12 solicitations for the VIP, 11 answered, 1 over the rate limits; 3 announcements; 4 claims", StatusRenderer.Text(snapshot), StringComparison.Ordinal);
    }

    [Fact]
    public void Json_WithoutConflict_HasANullConflict()
    {
        var root = Render(Sample(new EventJournal()) with { Conflict = null });
        Assert.Equal(JsonValueKind.Null, root.GetProperty("conflict").ValueKind);
    }

    [Fact]
    public void Json_Events_CarryKindFirstThenSeqTimeAndTypedFields()
    {
        var journal = new EventJournal();
        foreach (var e in OneOfEach())
        {
            journal.Add(e, T0, TimeSpan.FromMilliseconds(500));
        }
        var events = Render(Sample(journal)).GetProperty("events").EnumerateArray().ToList();
        Assert.Equal(EventKind.All, events.Select(e => e.GetProperty("kind").GetString()));
        Assert.All(events, e => Assert.Equal("kind", e.EnumerateObject().First().Name));
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.GetProperty("seq").GetInt64()));
        var dead = events[1];
        Assert.Equal(3, dead.GetProperty("peer").GetInt32());
        Assert.Equal(121.5, dead.GetProperty("silenceMs").GetDouble());
        Assert.Equal(500, dead.GetProperty("uptimeMs").GetDouble());
        Assert.Equal("declared-dead", events[6].GetProperty("cause").GetString());
        Assert.Equal(1, events[6].GetProperty("declaredBy").GetInt32());
        var state = events[10];
        Assert.Equal("health-failing", state.GetProperty("reason").GetString());
        Assert.Equal("timeout", state.GetProperty("health").GetString());
        Assert.False(state.TryGetProperty("conflict", out _), "a default conflict kind is left out");
    }

    [Fact]
    public void EventJournal_KeepsTheNewestInOrder_AndNumbersEveryEvent()
    {
        var journal = new EventJournal();
        for (var i = 1; i <= EventJournal.Capacity + 10; i++)
        {
            var stamped = journal.Add(new PeerLeft(i), T0.AddMilliseconds(i), TimeSpan.FromMilliseconds(i));
            Assert.Equal(i, stamped.Seq);
        }
        var kept = journal.Recent();
        Assert.Equal(EventJournal.Capacity, kept.Count);
        Assert.Equal(11, kept[0].Seq);
        Assert.Equal(EventJournal.Capacity + 10, journal.LastSeq);
        Assert.Equal(kept.Select(e => e.Seq).Order(), kept.Select(e => e.Seq));
        Assert.Equal(T0.AddMilliseconds(11), kept[0].Time);
    }

    [Fact]
    public void StatusDocument_OneEventOfEachKind_NamesEveryFieldAndKindTheDaemonWrites()
    {
        var doc = File.ReadAllText(Path.Combine(Repository.Root, "docs", "status-json.md"));
        var journal = new EventJournal();
        foreach (var e in OneOfEach())
        {
            journal.Add(e, T0, TimeSpan.Zero);
        }
        var missing = Names(Render(Sample(journal))).Where(name => !doc.Contains($"`{name}`", StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0, $"docs/status-json.md does not name: {string.Join(", ", missing)}");
    }

    /// <summary>Every property name and every string value of a kind/enum field in the document, recursively.</summary>
    private static IEnumerable<string> Names(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in element.EnumerateObject())
                {
                    // The keys of owners are node ids: data, not fields.
                    if (!NumericKey().IsMatch(p.Name))
                    {
                        yield return p.Name;
                    }
                    if (p.Name is "kind" or "reason" or "cause" or "failure" or "health" or "conflict" or "spoof" && p.Value.ValueKind == JsonValueKind.String)
                    {
                        yield return p.Value.GetString()!;
                    }
                    foreach (var inner in Names(p.Value))
                    {
                        yield return inner;
                    }
                }
                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    foreach (var inner in Names(item))
                    {
                        yield return inner;
                    }
                }
                break;
            default:
                break;
        }
    }

    [GeneratedRegex("^[0-9]+$")]
    private static partial Regex NumericKey();
}
