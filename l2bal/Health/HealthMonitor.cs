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
/// Probes the local services every health interval on a thread of its own (blocking probes, see
/// <see cref="HealthProbe"/>), feeds one <see cref="HealthPolicy"/> per probe, and wakes the loop
/// when the node's verdict changes: healthy while every probe is (health is per node,
/// docs/design.md#health). For the node's own SOCKS5 or TCP service, a healthy probe runs in full
/// once in <see cref="FullProbeEvery"/> checks and as the kernel's <see cref="ListenCheck"/> in the
/// others (docs/benchmarks.md: what the full probe costs at every check).
/// </summary>
internal sealed class HealthMonitor
{
    /// <summary>At 100 ms, a killed proxy is still seen within 100 ms, a hung one within 500 ms plus fall × the timeout.</summary>
    private const int FullProbeEvery = 5;

    private readonly BalancerLog _log;
    private volatile BalancerOptions _options;
    private volatile BalancerOptions? _reloaded;
    private ProbeState[] _probes;
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private volatile HealthView _view;

    public HealthMonitor(BalancerOptions options, BalancerLog log)
    {
        _options = options;
        _log = log;
        _probes = [.. options.Health.Select(spec => new ProbeState(spec, new HealthPolicy(options.HealthFall, options.HealthRise)))];
        // Without a probe the node is healthy; with some it is not until every probe has passed.
        _view = ViewOf(_probes);
    }

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

    /// <summary>Starts probing until <paramref name="stop"/>; with no probe configured, does nothing.</summary>
    public Task Start(CancellationToken stop) =>
        _probes.Length == 0 ? Task.CompletedTask : DedicatedThread.Start("l2bal probe", () =>
        {
            // This thread starts exec: commands; they get none of the daemon's capabilities.
            if (ThreadCapabilities.KeepFromChildren() is not 0 and var errno)
            {
                _log.ProbeCapabilitiesKept(Errno.Name(errno));
            }
            ProbeLoop(stop);
        });

    private void ProbeLoop(CancellationToken stop)
    {
        var interval = _options.HealthInterval;
        foreach (var probe in _probes)
        {
            probe.Listen = OpenListenCheck(probe.Spec);
        }
        var next = Now + interval;
        try
        {
            while (!stop.WaitHandle.WaitOne(next - Now > TimeSpan.Zero ? next - Now : TimeSpan.Zero))
            {
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
    }
}
