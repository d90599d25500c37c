using L2Balance.Balancer.Protocol;
using L2Balance.Common.Linux;

namespace L2Balance.Balancer.Daemon;

/// <summary>
/// What l2bal tells systemd (docs/design.md#systemd): READY=1 once its tables are installed and
/// the loop listens for adverts, STATUS= when its state or bucket count changes, WATCHDOG=1 from
/// the loop at half of WATCHDOG_USEC (a hung loop stops the pings and systemd restarts the
/// service), STOPPING=1 at a clean leave. Loop thread only; without NOTIFY_SOCKET it does nothing.
/// </summary>
internal sealed class ServiceNotifier(SystemdNotify? notify) : IDisposable
{
    private (AdvertState State, int Held)? _told;
    private TimeSpan _lastPing;

    /// <summary>When the next watchdog ping is due; <see cref="TimeSpan.MaxValue"/> without a watchdog.</summary>
    public TimeSpan NextPing => notify?.WatchdogInterval is { } every ? _lastPing + every : TimeSpan.MaxValue;

    /// <summary>The status line systemctl shows.</summary>
    public static string Describe(AdvertState state, int held, int buckets) =>
        $"{state.ToString().ToLowerInvariant()}, holds {held} of {buckets} buckets";

    /// <summary>READY=1 with the first status: called by the loop before its first step.</summary>
    public void Ready(AdvertState state, int held, int buckets, TimeSpan now)
    {
        _told = (state, held);
        _lastPing = now;
        notify?.Ready(Describe(state, held, buckets));
    }

    /// <summary>After each step: the status when it changed, the watchdog ping when due.</summary>
    public void Stepped(AdvertState state, int held, int buckets, TimeSpan now)
    {
        if (notify is null)
        {
            return;
        }
        if (_told != (state, held))
        {
            _told = (state, held);
            notify.Status(Describe(state, held, buckets));
        }
        if (now >= NextPing)
        {
            _lastPing = now;
            notify.Watchdog();
        }
    }

    /// <summary>RELOADING=1 before a reload (any thread).</summary>
    public void Reloading() => notify?.Reloading();

    /// <summary>READY=1 after a reload, applied or refused (any thread).</summary>
    public void Reloaded() => notify?.Ready();

    /// <summary>STOPPING=1: the loop ended for a requested stop and the node leaves the cluster.</summary>
    public void Stopping() => notify?.Stopping();

    public void Dispose() => notify?.Dispose();
}
