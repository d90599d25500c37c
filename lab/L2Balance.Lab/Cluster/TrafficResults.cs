using System.Text.Json;
using System.Text.Json.Serialization;

namespace L2Balance.Lab.Cluster;

/// <summary>How one client operation ended; one member per reason.</summary>
public enum TrafficOutcome
{
    /// <summary>Completed and the data checked.</summary>
    Ok,

    /// <summary>TCP RST in answer to the SYN (nothing listens; a node's stack answered).</summary>
    Refused,

    /// <summary>RST on an established connection.</summary>
    Reset,

    /// <summary>No answer within the step timeout (SYN lost, nobody owns the flow, a hung peer).</summary>
    Timeout,

    /// <summary>The peer closed (FIN) before the exchange finished.</summary>
    Eof,

    /// <summary>The proxy answered with a SOCKS reply code other than 0 (the detail names it).</summary>
    ProxyRefused,

    /// <summary>ICMP host or network unreachable.</summary>
    Unreachable,

    /// <summary>Bytes came back but not the ones sent (or a malformed SOCKS reply).</summary>
    Corrupt,

    /// <summary>Anything else (the detail has the exception).</summary>
    Other,
}

/// <summary>One short CONNECT through the proxy. Times are milliseconds since the run started.</summary>
/// <param name="Source">The client source address the socket was bound to.</param>
/// <param name="StartMs">When the TCP connect to the proxy began.</param>
/// <param name="EndMs">When it succeeded or failed.</param>
/// <param name="Outcome">How it ended.</param>
/// <param name="Node">The node that served it (from BND.ADDR), if the reply came.</param>
/// <param name="Detail">The failure's message, or null.</param>
public sealed record ConnectRecord(string Source, double StartMs, double EndMs, TrafficOutcome Outcome, int? Node, string? Detail);

/// <summary>One long-lived echo session through the proxy.</summary>
/// <param name="Source">The client source address.</param>
/// <param name="Node">The node that served it (from BND.ADDR), or null if it never got a reply.</param>
/// <param name="EstablishedMs">When the CONNECT reply came, or null if setup failed.</param>
/// <param name="Exchanges">Messages sent and echoed correctly.</param>
/// <param name="LastOkMs">When the last echo came back.</param>
/// <param name="Break">Null if the session lived until the run stopped; else why it broke (or why setup failed).</param>
/// <param name="BreakMs">When it broke.</param>
/// <param name="Detail">The failure's message, or null.</param>
public sealed record SessionRecord(string Source, int? Node, double? EstablishedMs, int Exchanges, double? LastOkMs, TrafficOutcome? Break, double? BreakMs, string? Detail);

/// <summary>One UDP ASSOCIATE session: datagrams to the UDP echo through the relay.</summary>
/// <param name="Source">The client source address (TCP control connection and UDP socket).</param>
/// <param name="Node">The node that holds it (the relay port's slice), or null.</param>
/// <param name="Relay">The relay endpoint from the reply (VIP:port), or null if setup failed.</param>
/// <param name="Sent">Datagrams sent.</param>
/// <param name="Received">Distinct datagrams echoed back.</param>
/// <param name="LongestGapMs">Longest time without an echo, from establishment to the end.</param>
/// <param name="SetupFailure">Null if the association was made, else why not.</param>
/// <param name="ControlBreak">Null if the control connection lived until the end, else how it ended.</param>
/// <param name="ControlBreakMs">When it ended.</param>
/// <param name="Detail">The failure's message, or null.</param>
public sealed record UdpRecord(
    string Source, int? Node, string? Relay, int Sent, int Received, double LongestGapMs,
    TrafficOutcome? SetupFailure, TrafficOutcome? ControlBreak, double? ControlBreakMs, string? Detail)
{
    /// <summary>Datagrams without an echo.</summary>
    public int Lost => Sent - Received;
}

/// <summary>Per-source view of the CONNECT stream.</summary>
/// <param name="Attempts">CONNECTs tried from this source.</param>
/// <param name="Succeeded">Those that completed.</param>
/// <param name="Failures">Failed ones by outcome.</param>
/// <param name="Nodes">Every node that served this source (more than one means its owner changed).</param>
/// <param name="LongestGapMs">Longest time without a successful CONNECT, including the run's start and end.</param>
public sealed record SourceStats(int Attempts, int Succeeded, IReadOnlyDictionary<TrafficOutcome, int> Failures, IReadOnlyList<int> Nodes, double LongestGapMs);

/// <summary>Per-node view: what each node served.</summary>
public sealed record NodeStats(int Connects, int Sessions, int UdpSessions);

/// <summary>Everything a <see cref="TrafficGenerator"/> run saw, with aggregates and JSON output.</summary>
public sealed class TrafficResults
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public TrafficResults(DateTimeOffset startedUtc, double durationMs, IReadOnlyList<ConnectRecord> connects, IReadOnlyList<SessionRecord> sessions, IReadOnlyList<UdpRecord> udp)
    {
        StartedUtc = startedUtc;
        DurationMs = durationMs;
        Connects = connects;
        Sessions = sessions;
        Udp = udp;
    }

    /// <summary>Wall-clock start; all record times are relative to it.</summary>
    public DateTimeOffset StartedUtc { get; }

    /// <summary>From start until the last operation ended.</summary>
    public double DurationMs { get; }

    /// <summary>Every CONNECT, in completion order.</summary>
    public IReadOnlyList<ConnectRecord> Connects { get; }

    public IReadOnlyList<SessionRecord> Sessions { get; }

    public IReadOnlyList<UdpRecord> Udp { get; }

    /// <summary>CONNECTs that succeeded.</summary>
    public int ConnectsOk => Connects.Count(c => c.Outcome == TrafficOutcome.Ok);

    /// <summary>CONNECTs that failed, by outcome.</summary>
    public IReadOnlyDictionary<TrafficOutcome, int> ConnectFailures =>
        Connects.Where(c => c.Outcome != TrafficOutcome.Ok).GroupBy(c => c.Outcome).ToDictionary(g => g.Key, g => g.Count());

    /// <summary>Long sessions that broke (or never came up).</summary>
    public int SessionBreaks => Sessions.Count(s => s.Break is not null);

    /// <summary>Per source address, in address order.</summary>
    public IReadOnlyDictionary<string, SourceStats> PerSource =>
        Connects.GroupBy(c => c.Source).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => SourceStatsOf([.. g]));

    /// <summary>Per node id: what it served (successful CONNECTs, sessions and UDP associations it held).</summary>
    public IReadOnlyDictionary<int, NodeStats> PerNode =>
        Connects.Where(c => c.Outcome == TrafficOutcome.Ok && c.Node is not null).Select(c => c.Node!.Value)
            .Concat(Sessions.Where(s => s.Node is not null).Select(s => s.Node!.Value))
            .Concat(Udp.Where(u => u.Node is not null).Select(u => u.Node!.Value))
            .Distinct().Order()
            .ToDictionary(n => n, n => new NodeStats(
                Connects.Count(c => c.Outcome == TrafficOutcome.Ok && c.Node == n),
                Sessions.Count(s => s.Node == n),
                Udp.Count(u => u.Node == n)));

    /// <summary>
    /// Successful CONNECTs per serving node per time bin, by the time each completed: bin i counts
    /// those that ended in [i·binMs, (i+1)·binMs). Every node that served one has a row as long as the run.
    /// </summary>
    public IReadOnlyDictionary<int, int[]> OkPerNodePerBin(double binMs)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(binMs);
        var bins = (int)Math.Ceiling(Math.Max(DurationMs, Connects.Select(c => c.EndMs).DefaultIfEmpty(0).Max()) / binMs);
        var rows = new SortedDictionary<int, int[]>();
        foreach (var c in Connects.Where(c => c.Outcome == TrafficOutcome.Ok && c.Node is not null))
        {
            if (!rows.TryGetValue(c.Node!.Value, out var row))
            {
                rows[c.Node.Value] = row = new int[Math.Max(bins, 1)];
            }
            row[Math.Min((int)(c.EndMs / binMs), row.Length - 1)]++;
        }
        return rows;
    }

    /// <summary>One line for logs and progress output.</summary>
    public string Summary() =>
        $"connects {ConnectsOk}/{Connects.Count} ok" +
        (ConnectFailures.Count == 0 ? string.Empty : $" (failed: {string.Join(", ", ConnectFailures.Select(f => $"{f.Key} {f.Value}"))})") +
        $"; sessions {Sessions.Count - SessionBreaks}/{Sessions.Count} unbroken" +
        $"; udp {Udp.Sum(u => u.Received)}/{Udp.Sum(u => u.Sent)} echoed" +
        $"; per node: {string.Join(", ", PerNode.Select(p => $"n{p.Key} {p.Value.Connects}c/{p.Value.Sessions}s/{p.Value.UdpSessions}u"))}";

    /// <summary>The whole run, records and aggregates, as indented JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    private SourceStats SourceStatsOf(IReadOnlyList<ConnectRecord> records)
    {
        var okEnds = records.Where(r => r.Outcome == TrafficOutcome.Ok).Select(r => r.EndMs).Order().ToList();
        var gap = 0.0;
        var last = 0.0;
        foreach (var end in okEnds)
        {
            gap = Math.Max(gap, end - last);
            last = end;
        }

        gap = Math.Max(gap, DurationMs - last);
        return new SourceStats(
            records.Count,
            okEnds.Count,
            records.Where(r => r.Outcome != TrafficOutcome.Ok).GroupBy(r => r.Outcome).ToDictionary(g => g.Key, g => g.Count()),
            records.Where(r => r.Outcome == TrafficOutcome.Ok && r.Node is not null).Select(r => r.Node!.Value).Distinct().Order().ToArray(),
            gap);
    }
}
