using System.Net;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Daemon;
using L2Balance.Balancer.Diagnostics;

namespace L2Balance.Balancer.Health;

/// <summary>The local services' health as the loop reads it: one immutable value, swapped whole.</summary>
/// <param name="Healthy">Whether the node may take clients: every probe's verdict is healthy.</param>
/// <param name="LastFailure">The last failure of the first unhealthy probe (or "not probed yet"); with several probes its detail names the probe.</param>
/// <param name="Probes">Each probe's own verdict, in the order given (empty without probes).</param>
internal sealed record HealthView(bool Healthy, HealthProbeResult LastFailure, IReadOnlyList<ProbeView>? Probes = null);

/// <summary>One probe's verdict: the probe in words, whether it passes (its own fall and rise), its last failure.</summary>
internal sealed record ProbeView(string Probe, bool Healthy, HealthProbeResult LastFailure);

/// <summary>
/// The port-unreachable wake's counters (docs/design.md#health): whether its socket holds the nflog
/// group, early probes run, port-unreachables ignored by reason, logged packets that were not one.
/// </summary>
internal sealed record ProbeWakeCounters(bool Listening, long Wakes, long IgnoredNotService, long IgnoredRateLimited, long IgnoredFailing,
    long Malformed, long Overruns, long BindFailures);

/// <summary>
/// Probes the local services every health interval on a thread of its own (blocking probes, see
/// <see cref="HealthProbe"/>), feeds one <see cref="HealthPolicy"/> per probe, and wakes the loop
/// when the node's verdict changes: healthy while every probe is (health is per node,
/// docs/design.md#health). For the node's own SOCKS5 or TCP service, a healthy probe runs in full
/// once in <see cref="FullProbeEvery"/> checks and as the kernel's <see cref="ListenCheck"/> in the
/// others (docs/benchmarks.md: what the full probe costs at every check).
/// </summary>
internal sealed class HealthMonitor : IDisposable
{
    /// <summary>At 100 ms, a killed proxy is still seen within 100 ms, a hung one within 500 ms plus fall × the timeout.</summary>
    private const int FullProbeEvery = 5;

    /// <summary>At most one early probe per probe in this time, however many port-unreachables come.</summary>
    internal static readonly TimeSpan WakeEvery = TimeSpan.FromMilliseconds(10);

    private readonly AutoResetEvent _woken = new(false);
    private readonly bool _watch;
    private long _wakes;
    private long _ignoredNotService;
    private long _ignoredRateLimited;
    private long _ignoredFailing;
    private long _malformed;
    private long _overruns;
    private long _bindFailures;
    private volatile bool _listening;

    private readonly BalancerLog _log;
    private volatile BalancerOptions _options;
    private volatile BalancerOptions? _reloaded;
    private volatile ProbeState[] _probes;
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private volatile HealthView _view;

    /// <param name="options">The daemon's settings.</param>
    /// <param name="log">The daemon's log.</param>
    /// <param name="watchPortUnreachables">Whether <see cref="Start"/> binds the nflog group of the wake (tests call <see cref="Wake"/> themselves).</param>
    public HealthMonitor(BalancerOptions options, BalancerLog log, bool watchPortUnreachables = true)
    {
        _watch = watchPortUnreachables;
        _options = options;
        _log = log;
        _probes = [.. options.Health.Select(spec => new ProbeState(spec, new HealthPolicy(options.HealthFall, options.HealthRise)))];
        // Without a probe the node is healthy; with some it is not until every probe has passed.
        _view = ViewOf(_probes);
    }

    /// <summary>After the probe threads have ended.</summary>
    public void Dispose() => _woken.Dispose();

    /// <summary>The current verdict (any thread).</summary>
    public HealthView View => _view;

    /// <summary>The settings probes run with (the latest reload's once the probe thread has taken it).</summary>
    public BalancerOptions Options => _reloaded ?? _options;

    /// <summary>
    /// SIGHUP: the probe thread takes the new health settings (probes, interval, timeout, fall,
    /// rise) before its next probe; fall and rise count afresh from the current state.
    /// </summary>
    public void Reload(BalancerOptions options) => _reloaded = options;

    /// <summary>Called on the probe thread when the verdict changes (the loop's wake-up).</summary>
    public Action? Changed { get; set; }

    /// <summary>The port-unreachable wake's counters (any thread).</summary>
    public ProbeWakeCounters WakeCounters => new(_listening, Interlocked.Read(ref _wakes), Interlocked.Read(ref _ignoredNotService),
        Interlocked.Read(ref _ignoredRateLimited), Interlocked.Read(ref _ignoredFailing), Interlocked.Read(ref _malformed),
        Interlocked.Read(ref _overruns), Interlocked.Read(ref _bindFailures));

    /// <summary>
    /// The UDP ports whose port-unreachables from the VIP wake a probe: those of the dns:// probes
    /// of this node's own service (the VIP or a loopback address), as the filter logs them at start.
    /// </summary>
    public static IReadOnlyList<int> WakePorts(BalancerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Vip is null ? [] : [.. options.Health.Where(spec => IsOwnUdpService(spec, options)).Select(spec => spec.EndPoint!.Port).Distinct().Order()];
    }

    /// <summary>Starts probing until <paramref name="stop"/>, and the port-unreachable wake with a dns:// probe; with no probe configured, does nothing.</summary>
    public Task Start(CancellationToken stop)
    {
        if (_probes.Length == 0)
        {
            return Task.CompletedTask;
        }
        var probes = DedicatedThread.Start("l2bal probe", () =>
        {
            // This thread starts exec: commands; they get none of the daemon's capabilities.
            if (ThreadCapabilities.KeepFromChildren() is not 0 and var errno)
            {
                _log.ProbeCapabilitiesKept(Errno.Name(errno));
            }
            ProbeLoop(stop);
        });
        return !_watch || WakePorts(_options).Count == 0 ? probes : Task.WhenAll(probes, DedicatedThread.Start("l2bal icmp wake", () => WatchLoop(stop)));
    }

    /// <summary>
    /// A port-unreachable from the VIP to <paramref name="port"/> (any thread): the probes of that
    /// port run in full at once, each at most once per <see cref="WakeEvery"/> and only while it
    /// passes (a failing probe already runs in full at every check; an early one would only hurry its rise).
    /// </summary>
    public void Wake(int port)
    {
        var now = _clock.Elapsed.Ticks;
        bool matched = false, limited = false, woke = false;
        foreach (var probe in _probes)
        {
            if (probe.Spec.Kind != HealthProbeKind.Dns || probe.Spec.EndPoint?.Port != port || !IsOwnUdpService(probe.Spec, _options))
            {
                continue;
            }
            matched = true;
            if (probe.Policy.State != HealthState.Healthy)
            {
                continue;
            }
            if (now - probe.LastWake < WakeEvery.Ticks)
            {
                limited = true;
                continue;
            }
            probe.LastWake = now;
            Volatile.Write(ref probe.WakePending, true);
            woke = true;
        }
        if (woke)
        {
            Interlocked.Increment(ref _wakes);
            _woken.Set();
        }
        else
        {
            Interlocked.Increment(ref IgnoredCounter(matched, limited));
        }
    }

    private ref long IgnoredCounter(bool matched, bool limited)
    {
        if (!matched)
        {
            return ref _ignoredNotService;
        }
        return ref limited ? ref _ignoredRateLimited : ref _ignoredFailing;
    }

    /// <summary>The wake's thread: binds the nflog group (on failure logs once, counts and leaves the probes to their interval) and reads it.</summary>
    private void WatchLoop(CancellationToken stop)
    {
        PortUnreachableWatch watch;
        try
        {
            watch = PortUnreachableWatch.Open(Kernel.NftRuleset.PortUnreachableLogGroup);
        }
        catch (IOException e)
        {
            Interlocked.Increment(ref _bindFailures);
            _log.PortUnreachableWakeUnavailable(e.Message);
            return;
        }
        using (watch)
        {
            _listening = true;
            try
            {
                // Started only with wake ports, which only an IPv4 VIP has (WakePorts).
                watch.Run(_options.Vip!, (verdict, port) =>
                {
                    if (verdict == NflogPacketVerdict.PortUnreachable)
                    {
                        Wake(port);
                    }
                    else
                    {
                        Interlocked.Increment(ref _malformed);
                    }
                }, () => Interlocked.Increment(ref _overruns), stop);
            }
            catch (IOException e)
            {
                _log.PortUnreachableWakeUnavailable(e.Message);
            }
            finally
            {
                _listening = false;
            }
        }
    }

    private static bool IsOwnUdpService(HealthProbeSpec spec, BalancerOptions options) =>
        spec.Kind == HealthProbeKind.Dns && spec.EndPoint is { } endPoint
        && (endPoint.Address.Equals(options.Vip) || IPAddress.IsLoopback(endPoint.Address));

    private void ProbeLoop(CancellationToken stop)
    {
        var interval = _options.HealthInterval;
        foreach (var probe in _probes)
        {
            probe.Listen = OpenListenCheck(probe.Spec);
        }
        var next = Now + interval;
        WaitHandle[] events = [stop.WaitHandle, _woken];
        try
        {
            while (true)
            {
                var signalled = WaitHandle.WaitAny(events, next - Now > TimeSpan.Zero ? next - Now : TimeSpan.Zero);
                if (signalled == 0)
                {
                    break;
                }
                if (signalled == 1)
                {
                    // A port-unreachable woke probes: they run in full now; the interval's schedule stays.
                    if (EarlyChecks())
                    {
                        _view = ViewOf(_probes);
                        Changed?.Invoke();
                    }
                    continue;
                }
                if (Interlocked.Exchange(ref _reloaded, null) is { } reloaded)
                {
                    Take(reloaded);
                    interval = reloaded.HealthInterval;
                    next = Now;
                }
                // A probe slower than the interval delays the next one instead of queueing a burst.
                next = next + interval > Now ? next + interval : Now + interval;
                var changed = false;
                foreach (var probe in _probes)
                {
                    changed |= Check(probe);
                }
                if (changed)
                {
                    _view = ViewOf(_probes);
                    Changed?.Invoke();
                }
            }
        }
        finally
        {
            foreach (var probe in _probes)
            {
                probe.Listen?.Dispose();
            }
        }
    }

    /// <summary>The full probe of each woken probe; true when a verdict changed.</summary>
    private bool EarlyChecks()
    {
        var changed = false;
        foreach (var probe in _probes)
        {
            if (Interlocked.Exchange(ref probe.WakePending, false))
            {
                probe.SinceFull = 0;
                changed |= probe.Policy.Record(HealthProbe.Run(probe.Spec, _options.HealthTimeout));
            }
        }
        return changed;
    }

    /// <summary>One check of one probe (the full probe or the listen check); true when its verdict changed.</summary>
    private bool Check(ProbeState probe)
    {
        HealthProbeResult? result;
        if (probe.Listen is null || probe.Policy.WantsFullProbe(probe.SinceFull, FullProbeEvery))
        {
            probe.SinceFull = 0;
            result = HealthProbe.Run(probe.Spec, _options.HealthTimeout);
        }
        else
        {
            probe.SinceFull++;
            result = CheckListening(probe);
        }
        return result is { } r && probe.Policy.Record(r);
    }

    private static HealthView ViewOf(ProbeState[] probes)
    {
        var views = probes.Select(p => new ProbeView(p.Spec.ToString(), p.Policy.State == HealthState.Healthy, p.Policy.LastFailure)).ToArray();
        if (views.FirstOrDefault(v => !v.Healthy) is not { } failing)
        {
            return new HealthView(true, HealthProbeResult.Pass, views);
        }
        var failure = views.Length == 1 ? failing.LastFailure : failing.LastFailure with { Detail = $"{failing.Probe}: {failing.LastFailure.Detail}" };
        return new HealthView(false, failure, views);
    }

    private TimeSpan Now => _clock.Elapsed;

    /// <summary>
    /// Applies reloaded settings on the probe thread: a probe kept keeps its verdict under the new
    /// thresholds; a probe added starts from the node's verdict (a reload moves no bucket by itself).
    /// </summary>
    private void Take(BalancerOptions reloaded)
    {
        _options = reloaded;
        var old = _probes;
        var template = old.FirstOrDefault(p => p.Policy.State != HealthState.Healthy) ?? old.FirstOrDefault();
        _probes = [.. reloaded.Health.Select(spec =>
        {
            var kept = old.FirstOrDefault(p => p.Spec.Equals(spec)) ?? template;
            var policy = kept is null ? new HealthPolicy(reloaded.HealthFall, reloaded.HealthRise) : HealthPolicy.Continuing(kept.Policy, reloaded.HealthFall, reloaded.HealthRise);
            return new ProbeState(spec, policy);
        })];
        foreach (var probe in old)
        {
            probe.Listen?.Dispose();
        }
        foreach (var probe in _probes)
        {
            probe.Listen = OpenListenCheck(probe.Spec);
        }
        _view = ViewOf(_probes);
    }

    /// <summary>
    /// The listen check, for a SOCKS5 or TCP probe of this node's own service (the VIP or a
    /// loopback address: a listening socket elsewhere is not in this kernel); null for others.
    /// </summary>
    private ListenCheck? OpenListenCheck(HealthProbeSpec spec)
    {
        if (spec.Kind is not (HealthProbeKind.Socks5 or HealthProbeKind.Tcp) || spec.EndPoint is not { } endPoint
            || !(endPoint.Address.Equals(_options.Vip) || endPoint.Address.Equals(_options.Vip6) || IPAddress.IsLoopback(endPoint.Address)))
        {
            return null;
        }
        try
        {
            return ListenCheck.Open(endPoint);
        }
        catch (IOException e)
        {
            _log.ListenCheckUnavailable(e.Message);
            return null;
        }
    }

    /// <summary>The listen check's verdict: a failure when nothing listens, null (nothing to record) when something does.</summary>
    private HealthProbeResult? CheckListening(ProbeState probe)
    {
        try
        {
            return probe.Listen!.Listens() ? null : new HealthProbeResult(HealthFailure.NothingListens, $"nothing listens on {probe.Listen.EndPoint}");
        }
        catch (IOException e)
        {
            _log.ListenCheckFailed(e.Message);
            probe.Listen!.Dispose();
            probe.Listen = null;
            return null;
        }
    }

    /// <summary>One probe's state on the probe thread.</summary>
    private sealed class ProbeState(HealthProbeSpec spec, HealthPolicy policy)
    {
        public HealthProbeSpec Spec { get; } = spec;

        public HealthPolicy Policy { get; } = policy;

        public ListenCheck? Listen { get; set; }

        public int SinceFull { get; set; }

        /// <summary>When the last early probe was asked for (clock ticks; the wake's thread only).</summary>
        public long LastWake = long.MinValue / 2;

        /// <summary>Set by the wake's thread, taken by the probe thread.</summary>
        public bool WakePending;
    }
}
