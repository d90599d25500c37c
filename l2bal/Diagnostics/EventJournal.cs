namespace L2Balance.Balancer.Diagnostics;

/// <summary>
/// The daemon's recent events, stamped with their sequence number and time: the last
/// <see cref="Capacity"/> are kept for <c>status --json</c>, older ones are dropped (their
/// counters remain). Written and read on the daemon's loop only.
/// </summary>
internal sealed class EventJournal
{
    /// <summary>Enough for every event of a failover and its hand-back on 64 nodes, small enough to render with each status.</summary>
    public const int Capacity = 256;

    private readonly BalancerEvent[] _ring = new BalancerEvent[Capacity];
    private long _count;

    /// <summary>The sequence number of the newest event, 0 before the first.</summary>
    public long LastSeq => _count;

    /// <summary>Stamps <paramref name="e"/> with the next sequence number and the times, keeps it, and returns the stamped event.</summary>
    public BalancerEvent Add(BalancerEvent e, DateTime time, TimeSpan uptime)
    {
        var stamped = e with { Seq = ++_count, Time = time, UptimeMs = Math.Round(uptime.TotalMilliseconds, 3) };
        _ring[(_count - 1) % Capacity] = stamped;
        return stamped;
    }

    /// <summary>The kept events, oldest first.</summary>
    public IReadOnlyList<BalancerEvent> Recent()
    {
        var kept = (int)Math.Min(_count, Capacity);
        var list = new BalancerEvent[kept];
        for (var i = 0; i < kept; i++)
        {
            list[i] = _ring[(_count - kept + i) % Capacity];
        }
        return list;
    }
}
