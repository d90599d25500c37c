using System.Runtime.InteropServices;

namespace L2Balance.Common.Logging;

/// <summary>
/// "Log once per key per interval, count always": for events that can repeat at packet or
/// connection rate (a scanner's garbage, a misconfigured peer's adverts), so that the log shows
/// each kind once per interval with how many were not shown, and never floods.
/// </summary>
/// <typeparam name="TKey">
/// What is rate-limited separately: a closed set such as an enum of reasons. One entry is kept per
/// key for the instance's life, so keys must not come from the network (addresses, names).
/// </typeparam>
/// <remarks>
/// Thread-safe. Time comes from the <see cref="TimeProvider"/> given to the constructor (tests pass
/// one they advance by hand). Typical use, where <c>log</c> writes one line with a stable event id:
/// <code>
/// private readonly LogRateLimiter&lt;AdvertRejection&gt; _rejections = new(TimeSpan.FromSeconds(10));
///
/// public void AdvertRejected(AdvertRejection reason, string from)
/// {
///     if (_rejections.ShouldLog(reason, out var notLogged))
///     {
///         log.Warning(EventIds.AdvertRejected, $"advert from {from} rejected: {reason} ({notLogged} more since the last line; logged once per 10 s)");
///     }
/// }
/// </code>
/// </remarks>
public sealed class LogRateLimiter<TKey>
    where TKey : notnull
{
    private readonly Dictionary<TKey, Entry> _entries = [];
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;

    /// <summary>Limits each key to one line per <paramref name="interval"/>.</summary>
    /// <param name="interval">The least time between two lines of one key; positive.</param>
    /// <param name="time">The clock; <see cref="TimeProvider.System"/> when null.</param>
    public LogRateLimiter(TimeSpan interval, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        Interval = interval;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The least time between two lines of one key.</summary>
    public TimeSpan Interval { get; }

    /// <summary>
    /// Counts one occurrence of <paramref name="key"/> and says whether to log it: true for the first
    /// occurrence, and for the first one once <see cref="Interval"/> has passed since the last
    /// logged one.
    /// </summary>
    /// <param name="key">What occurred.</param>
    /// <param name="notLogged">
    /// When true is returned: how many occurrences of <paramref name="key"/> were not logged since
    /// the last logged one (0 for the first); otherwise 0.
    /// </param>
    public bool ShouldLog(TKey key, out long notLogged)
    {
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(_entries, key, out var seen);
            entry.Total++;
            if (seen && _time.GetElapsedTime(entry.LastLogged, now) < Interval)
            {
                entry.NotLogged++;
                notLogged = 0;
                return false;
            }

            notLogged = entry.NotLogged;
            entry.NotLogged = 0;
            entry.LastLogged = now;
            return true;
        }
    }

    /// <summary>How many occurrences of <paramref name="key"/> were counted, logged or not.</summary>
    public long Count(TKey key)
    {
        lock (_gate)
        {
            return _entries.TryGetValue(key, out var entry) ? entry.Total : 0;
        }
    }

    private struct Entry
    {
        public long LastLogged;
        public long NotLogged;
        public long Total;
    }
}
