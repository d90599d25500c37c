using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using L2Balance.Common.Linux;

namespace L2Balance.Lab.Cluster;

/// <summary>What <see cref="DnsQueryGenerator"/> sends: a fixed number of queries at a fixed rate, round robin over many source ports of one address.</summary>
public sealed record DnsLoadOptions
{
    /// <summary>The one client address every query comes from.</summary>
    public required IPAddress Source { get; init; }

    /// <summary>Where the queries go (the VIP's port 53).</summary>
    public required IPEndPoint Server { get; init; }

    /// <summary>Distinct source ports (one UDP socket each).</summary>
    public int Ports { get; init; } = 2000;

    /// <summary>
    /// The first source port (the others follow it); 0: ephemeral ports. Runs on one lab should use
    /// ports apart: a UDP flow's conntrack entry outlives a run (for a port of affinity none the filter
    /// judges it by its bucket anyway, docs/design.md#per-port-affinity).
    /// </summary>
    public int FirstPort { get; init; }

    /// <summary>Queries in all (bounded count).</summary>
    public int Queries { get; init; } = 2000;

    /// <summary>Queries per second (bounded time: Queries / Rate).</summary>
    public double Rate { get; init; } = 2000;

    /// <summary>An answer later than this after the last query is not waited for: that query is lost.</summary>
    public TimeSpan AnswerTimeout { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>One query: its source port and id, when it was sent, its answers (count, first time, who answered).</summary>
public sealed class DnsQueryRecord(int port, ushort id, TimeSpan sentAt)
{
    public int Port { get; } = port;

    public ushort Id { get; } = id;

    public TimeSpan SentAt { get; } = sentAt;

    /// <summary>Replies seen for this (port, id): 1 is right, 0 is a lost query, 2 or more a duplicate.</summary>
    public int Answers { get; internal set; }

    public TimeSpan? AnsweredAt { get; internal set; }

    /// <summary>The TXT string of the first reply: which server answered (null: no answer, or one without the record).</summary>
    public string? AnsweredBy { get; internal set; }

    public int Rcode { get; internal set; }
}

/// <summary>The capture at the client: every query sent and what came back for it.</summary>
public sealed class DnsLoadResult(IReadOnlyList<DnsQueryRecord> queries, int strayReplies, TimeSpan duration)
{
    public IReadOnlyList<DnsQueryRecord> Queries { get; } = queries;

    /// <summary>Replies whose (port, id) matches no query sent (or that do not parse).</summary>
    public int StrayReplies { get; } = strayReplies;

    /// <summary>From the first query sent to the end of the wait for answers.</summary>
    public TimeSpan Duration { get; } = duration;

    public int Sent => Queries.Count;

    public int Lost => Queries.Count(q => q.Answers == 0);

    public int Duplicated => Queries.Count(q => q.Answers > 1);

    public int DistinctPorts => Queries.Select(q => q.Port).Distinct().Count();

    /// <summary>Answered queries by who answered (the TXT string).</summary>
    public IReadOnlyDictionary<string, int> ByServer =>
        Queries.Where(q => q.AnsweredBy is not null).GroupBy(q => q.AnsweredBy!).ToDictionary(g => g.Key, g => g.Count());

    /// <summary>Latency of the answered queries at quantile <paramref name="q"/> (0..1).</summary>
    public TimeSpan LatencyQuantile(double q)
    {
        var latencies = Queries.Where(r => r.AnsweredAt is not null).Select(r => (r.AnsweredAt!.Value - r.SentAt).Ticks).Order().ToArray();
        return latencies.Length == 0 ? TimeSpan.Zero : TimeSpan.FromTicks(latencies[(int)Math.Min(latencies.Length - 1, Math.Floor(q * latencies.Length))]);
    }

    public override string ToString() =>
        $"{Sent} queries from {DistinctPorts} ports in {Duration.TotalSeconds:0.00} s: lost {Lost}, duplicated {Duplicated}, stray {StrayReplies}; by server "
        + string.Join(", ", ByServer.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"))
        + $"; latency median {LatencyQuantile(0.5).TotalMicroseconds:0} µs, p99 {LatencyQuantile(0.99).TotalMicroseconds:0} µs";
}

/// <summary>
/// A DNS client of its own for the lab: one UDP socket per source port, all on one client address
/// in the client's namespace, sending TXT queries for <see cref="DnsServers.WhoName"/> round robin
/// over the ports at a fixed rate, and capturing every reply by (source port, query id). Unlike
/// dnsperf it keeps each query's fate: answered once, twice, or never, by whom, when.
/// </summary>
public static class DnsQueryGenerator
{
    /// <summary>Runs the load from <paramref name="client"/>; <paramref name="clock"/>, when given, times the queries (so a caller can place a fault on the same time line).</summary>
    public static async Task<DnsLoadResult> RunAsync(LabHost client, DnsLoadOptions options, Stopwatch? clock = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Ports, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Ports, 20_000);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Queries, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Queries, 1_000_000);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.Rate, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.FirstPort + (options.FirstPort == 0 ? 0 : options.Ports), 65536);
        // Ids must stay unique per port while a run lasts: at most half the id space each.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Queries, options.Ports * 32_768);
        clock ??= Stopwatch.StartNew();
        var sockets = NamespaceThread.Run(client.NamespacePath, () =>
        {
            var opened = new List<Socket>(options.Ports);
            try
            {
                for (var i = 0; i < options.Ports; i++)
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                    opened.Add(socket);
                    socket.Bind(new IPEndPoint(options.Source, options.FirstPort == 0 ? 0 : options.FirstPort + i));
                }
                return opened.ToArray();
            }
            catch
            {
                opened.ForEach(s => s.Dispose());
                throw;
            }
        }, "lab-dns-client");
        var pending = sockets.Select(_ => new Dictionary<ushort, DnsQueryRecord>()).ToArray();
        var all = new List<DnsQueryRecord>(options.Queries);
        var stray = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var receivers = sockets.Select((socket, i) => Task.Run(async () =>
        {
            var buffer = new byte[1500];
            while (!stop.IsCancellationRequested)
            {
                int n;
                try
                {
                    n = await socket.ReceiveAsync(buffer, SocketFlags.None, stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (SocketException)
                {
                    continue; // an ICMP error from a node whose server is gone: that query stays unanswered
                }
                var at = clock.Elapsed;
                var reply = DnsWire.ReadTxtAnswer(buffer.AsSpan(0, n));
                lock (pending[i])
                {
                    if (reply is { } r && pending[i].TryGetValue(r.Id, out var record))
                    {
                        if (record.Answers++ == 0)
                        {
                            record.AnsweredAt = at;
                            record.AnsweredBy = r.Text;
                            record.Rcode = r.Rcode;
                        }
                    }
                    else
                    {
                        Interlocked.Increment(ref stray);
                    }
                }
            }
        }, CancellationToken.None)).ToArray();
        var started = clock.Elapsed;
        try
        {
            var random = new Random();
            for (var sent = 0; sent < options.Queries;)
            {
                var due = Math.Min(options.Queries, (int)((clock.Elapsed - started).TotalSeconds * options.Rate) + 1);
                for (; sent < due; sent++)
                {
                    var i = sent % sockets.Length;
                    ushort id;
                    DnsQueryRecord record;
                    lock (pending[i])
                    {
                        do
                        {
                            id = (ushort)random.Next(0x10000);
                        }
                        while (pending[i].ContainsKey(id));
                        record = new DnsQueryRecord(((IPEndPoint)sockets[i].LocalEndPoint!).Port, id, clock.Elapsed);
                        pending[i][id] = record;
                    }
                    all.Add(record);
                    sockets[i].SendTo(DnsWire.TxtQuery(id, DnsServers.WhoName), options.Server);
                }
                if (sent < options.Queries)
                {
                    await Task.Delay(1, cancellationToken).ConfigureAwait(false);
                }
            }
            await Task.Delay(options.AnswerTimeout, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(receivers).ConfigureAwait(false);
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }
        lock (pending)
        {
            return new DnsLoadResult(all, stray, clock.Elapsed - started);
        }
    }
}
