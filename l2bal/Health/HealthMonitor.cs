using System.Net;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Daemon;
using L2Balance.Balancer.Diagnostics;

namespace L2Balance.Balancer.Health;

/// <summary>The local service's health as the loop reads it: one immutable value, swapped whole.</summary>
/// <param name="Healthy">Whether the node may take clients.</param>
/// <param name="LastFailure">The last failed probe (or "not probed yet").</param>
internal sealed record HealthView(bool Healthy, HealthProbeResult LastFailure);

/// <summary>
/// Probes the local service every health interval on a thread of its own (blocking probes, see
/// <see cref="HealthProbe"/>), feeds <see cref="HealthPolicy"/>, and wakes the loop when the
/// verdict changes. For the node's own SOCKS5 or TCP service, a healthy node runs the full probe
/// once in <see cref="FullProbeEvery"/> checks and the kernel's <see cref="ListenCheck"/> in the
/// others (docs/benchmarks.md: what the full probe costs at every check).
/// </summary>
internal sealed class HealthMonitor
{
    /// <summary>At 100 ms, a killed proxy is still seen within 100 ms, a hung one within 500 ms plus fall × the timeout.</summary>
    private const int FullProbeEvery = 5;

    private readonly BalancerLog _log;
    private volatile BalancerOptions _options;
    private volatile BalancerOptions? _reloaded;
    private HealthPolicy _policy;
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private volatile HealthView _view;

    public HealthMonitor(BalancerOptions options, BalancerLog log)
    {
        _options = options;
        _log = log;
        _policy = new HealthPolicy(options.HealthFall, options.HealthRise);
        // Without a probe the node is healthy; with one it is not until the first probe passes.
        _view = new HealthView(options.Health.Kind == HealthProbeKind.None, _policy.LastFailure);
    }

    /// <summary>The current verdict (any thread).</summary>
    public HealthView View => _view;

    /// <summary>The settings probes run with (the latest reload's once the probe thread has taken it).</summary>
    public BalancerOptions Options => _reloaded ?? _options;

    /// <summary>
    /// SIGHUP: the probe thread takes the new health settings (probe, interval, timeout, fall,
    /// rise) before its next probe; fall and rise count afresh from the current state.
    /// </summary>
    public void Reload(BalancerOptions options) => _reloaded = options;

    /// <summary>Called on the probe thread when the verdict changes (the loop's wake-up).</summary>
    public Action? Changed { get; set; }

    /// <summary>Starts probing until <paramref name="stop"/>; with no probe configured, does nothing.</summary>
    public Task Start(CancellationToken stop) =>
        _options.Health.Kind == HealthProbeKind.None ? Task.CompletedTask : DedicatedThread.Start("l2bal probe", () =>
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
        var listen = OpenListenCheck();
        var sinceFull = 0;
        var next = Now + interval;
        try
        {
            while (!stop.WaitHandle.WaitOne(next - Now > TimeSpan.Zero ? next - Now : TimeSpan.Zero))
            {
                if (Interlocked.Exchange(ref _reloaded, null) is { } reloaded)
                {
                    Take(reloaded, ref listen);
                    interval = reloaded.HealthInterval;
                    sinceFull = 0;
                    next = Now;
                }
                // A probe slower than the interval delays the next one instead of queueing a burst.
                next = next + interval > Now ? next + interval : Now + interval;
                HealthProbeResult? result;
                if (listen is null || _policy.WantsFullProbe(sinceFull, FullProbeEvery))
                {
                    sinceFull = 0;
                    result = HealthProbe.Run(_options.Health, _options.HealthTimeout);
                }
                else
                {
                    sinceFull++;
                    result = CheckListening(ref listen);
                }
                if (result is { } r && _policy.Record(r))
                {
                    _view = new HealthView(_policy.State == HealthState.Healthy, _policy.LastFailure);
                    Changed?.Invoke();
                }
            }
        }
        finally
        {
            listen?.Dispose();
        }
    }

    private TimeSpan Now => _clock.Elapsed;

    /// <summary>Applies reloaded settings on the probe thread: a new policy that keeps the current verdict, a new listen check.</summary>
    private void Take(BalancerOptions reloaded, ref ListenCheck? listen)
    {
        _options = reloaded;
        _policy = HealthPolicy.Continuing(_policy, reloaded.HealthFall, reloaded.HealthRise);
        listen?.Dispose();
        listen = OpenListenCheck();
    }

    /// <summary>
    /// The listen check, for a SOCKS5 or TCP probe of this node's own service (the VIP or a
    /// loopback address: a listening socket elsewhere is not in this kernel); null for others.
    /// </summary>
    private ListenCheck? OpenListenCheck()
    {
        var spec = _options.Health;
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
    private HealthProbeResult? CheckListening(ref ListenCheck? listen)
    {
        try
        {
            return listen!.Listens() ? null : new HealthProbeResult(HealthFailure.NothingListens, $"nothing listens on {listen.EndPoint}");
        }
        catch (IOException e)
        {
            _log.ListenCheckFailed(e.Message);
            listen!.Dispose();
            listen = null;
            return null;
        }
    }
}
