using System.Diagnostics;
using System.Globalization;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Diagnostics;

/// <summary>Stable event ids of l2bal's log lines, never reused (docs/conventions.md §21).</summary>
internal static class EventIds
{
    public const int Started = 1;
    public const int Stopping = 2;
    public const int Membership = 10;
    public const int Ownership = 11;
    public const int Health = 12;
    public const int Drain = 13;
    public const int AdvertRejected = 20;
    public const int ConfigMismatch = 21;
    public const int KernelError = 30;
    public const int Unexpected = 31;
}

/// <summary>
/// l2bal's log: one line per event to standard error (journald adds the time when run as a
/// service; we add it too for the lab). State changes are logged once at info; rejected adverts,
/// which can arrive at packet rate, are counted always and logged once per reason per 10 s (docs/conventions.md §22).
/// </summary>
internal sealed class BalancerLog(TextWriter output)
{
    private static readonly long RateLimitTicks = Stopwatch.Frequency * 10;
    private readonly long[] _lastRejectLog = new long[Enum.GetValues<AdvertRejection>().Length];
    private readonly Lock _gate = new();

    public void Info(int eventId, string message) => Write("info", eventId, message);

    public void Warning(int eventId, string message) => Write("warning", eventId, message);

    public void Error(int eventId, string message) => Write("error", eventId, message);

    /// <summary>A rejected advert: logged at most once per reason per 10 s; counters keep the count.</summary>
    public void AdvertRejected(AdvertRejection reason, string from, long total)
    {
        var now = Stopwatch.GetTimestamp();
        ref var last = ref _lastRejectLog[(int)reason];
        if (last != 0 && now - last < RateLimitTicks)
        {
            return;
        }
        last = now;
        var eventId = reason == AdvertRejection.ConfigMismatch ? EventIds.ConfigMismatch : EventIds.AdvertRejected;
        var why = reason switch
        {
            AdvertRejection.BadHmac => "bad HMAC: the sender does not have this cluster's key",
            AdvertRejection.ConfigMismatch => "cluster settings differ (VIP, buckets, seed or node count): fix the configuration; the sender is ignored",
            AdvertRejection.Replayed => "replayed or out-of-order sequence",
            AdvertRejection.OtherCluster => "another cluster id on this segment",
            _ => reason.ToString(),
        };
        Warning(eventId, $"advert from {from} rejected: {why} ({total} so far; logged once per 10 s)");
    }

    private void Write(string level, int eventId, string message)
    {
        var line = string.Create(CultureInfo.InvariantCulture,
            $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} l2bal[{Environment.ProcessId}]: {level}[{eventId}]: {message}");
        lock (_gate)
        {
            output.WriteLine(line);
            output.Flush();
        }
    }
}
