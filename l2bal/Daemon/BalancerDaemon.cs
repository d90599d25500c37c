using System.Collections.Concurrent;
using System.Diagnostics;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Health;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>
/// The l2bal daemon: one loop thread that owns all state and applies what the decision cores
/// decide. Each step: notice a stall and the carrier (<see cref="NodePolicy.Wake"/>), take the
/// adverts (<see cref="MembershipEngine"/>, <see cref="NodePolicy"/> for conflicts), choose this
/// node's state (<see cref="NodePolicy.ChooseState"/>), step the membership, record its events,
/// follow the draining buckets, update the kernel filter or renew its lease, and advertise. The
/// roles around it: <see cref="HealthMonitor"/> (probes), <see cref="NodeResources"/> (what the
/// node puts in place and takes down, the <see cref="Carrier"/> among them), the control part
/// (BalancerDaemon.Control.cs) and <see cref="StatusRenderer"/>.
/// </summary>
internal sealed partial class BalancerDaemon : IDisposable
{
    /// <summary>How often draining buckets are checked against conntrack: once a second.</summary>
    private static readonly TimeSpan DrainCheckPeriod = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Added to every sleep: a wake-up a hair early would find nothing due and sleep again for
    /// microseconds; 100 µs late costs nothing measurable.
    /// </summary>
    private static readonly TimeSpan DeadlineSlack = TimeSpan.FromMilliseconds(0.1);

    private readonly BalancerOptions _options;
    private readonly byte[] _key;
    private readonly byte[]? _previousKey;
    private readonly BalancerLog _log;
    private readonly BalancerCounters _counters = new();
    private readonly EventJournal _journal = new();
    private readonly IKernelFilter _filter;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ConcurrentQueue<TaskCompletionSource<string>> _metricsRequests = new();
    private readonly ulong _incarnation = (ulong)(DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
    private readonly UInt128 _configDigest;
    private readonly MembershipEngine _engine;
    private readonly NodePolicy _policy;
    private readonly HealthMonitor _health;
    private readonly FilterSettings _settings;
    private ulong _sequence;
    private TimeSpan _lastLease = TimeSpan.FromDays(-1);
    private TimeSpan _lastStepAt;

    /// <summary>The weight SIGHUP last read (any thread writes, the loop hands it to the engine).</summary>
    private int _weight;
    private TimeSpan _lastDrainCheck;
    private Task<(TimeSpan StartedAt, IReadOnlyDictionary<int, int> Flows)>? _drainRead;
    private bool _sliceGranted;
    private LoopWaiter? _waiter;
    private ServiceNotifier _notifier = new(null);
    private readonly Migration.MigrationCoordinator? _migration;

    public BalancerDaemon(BalancerOptions options, byte[] key, BalancerLog log, IKernelFilter filter, byte[]? previousKey = null)
    {
        _options = options;
        _key = key;
        _previousKey = previousKey;
        _keys = new AdvertKeys(key, previousKey);
        _log = log;
        _filter = filter;
        _configDigest = AdvertConfigDigest.Compute(options.Vip, options.Buckets, options.EffectiveSeed, options.NodeCount, options.EffectiveClusterId, options.Vip6, options.Affinity);
        _engine = new MembershipEngine(options.NodeId, options.NodeCount, options.Buckets, options.AdvertInterval, options.DeadTime, options.SettleTime, Now)
        {
            Weight = options.Weight,
        };
        _weight = options.Weight;
        var probe = options.Health.Count == 0 ? null : HealthProbeSpec.Describe(options.Health);
        _policy = new NodePolicy(options.NodeId, _incarnation, options.AdvertInterval + DeadlineSlack, options.DeadTime, options.LeaseTime, probe, options.Buckets);
        _policy.UseKeys(_keys.CurrentId, _keys.PreviousId, (byte)options.AdvertVersion);
        _health = new HealthMonitor(options, log) { Changed = WakeLoop };
        var clusterMac = options.MacMode == MacMode.Multicast
            ? ClusterMac.Multicast(options.EffectiveClusterId)
            : ClusterMac.UnicastFlood(options.EffectiveClusterId);
        _settings = FilterSettingsFor(options, clusterMac);
        _migration = options.Migration is { } self
            ? new Migration.MigrationCoordinator(self, new Migration.MigrationProxyClient(Migration.MigrationProxyClient.DefaultPath, MigrationRequestTimeout), log)
            : null;
    }

    /// <summary>How long one request to l2proxy's migration socket may take (a move of a thousand sessions included).</summary>
    private static readonly TimeSpan MigrationRequestTimeout = TimeSpan.FromSeconds(30);

    private TimeSpan Now => _clock.Elapsed;

    /// <summary>What the kernel filter of a node run with <paramref name="o"/> is installed with.</summary>
    internal static FilterSettings FilterSettingsFor(BalancerOptions o, MacAddress clusterMac)
    {
        var slice = PortSlice.For(o.NodeId, o.NodeCount);
        return new FilterSettings(o.Interface, o.Vip, clusterMac, o.MacMode, o.Buckets, o.EffectiveSeed,
            new PortSpan(slice.Low, slice.High), new PortSpan(PortSlice.RangeLow, PortSlice.RangeHigh),
            ServicePorts: [.. o.Services.Select(v => (v.Protocol, v.Port))], Lease: o.LeaseTime, AffinityRules: o.Affinity,
            WakePorts: HealthMonitor.WakePorts(o), Vip6: o.Vip6, Migrate: o.Migration is not null);
    }

    /// <summary>Runs the node until <paramref name="stop"/> or a fatal error; returns the exit code.</summary>
    public async Task<int> RunAsync(CancellationToken stop)
    {
        var o = _options;
        NodeResources io;
        try
        {
            io = await NodeResources.OpenAsync(o, _settings, _filter, _log, _counters, RequestMetrics).ConfigureAwait(false);
        }
        catch (Exception e) when (NodeResources.IsStartFailure(e))
        {
            _log.StartFailed(o.Interface, e.Message);
            return 1;
        }
        using var verifier = new AdvertVerifier(_key, o.EffectiveClusterId, o.NodeId, _configDigest, _previousKey, (byte)o.AdvertVersion);
        using var stopAll = CancellationTokenSource.CreateLinkedTokenSource(stop);
        int exit;
        try
        {
            // Every running node answers who-has for the VIP identically (cluster MAC); a node that is down answers nothing.
            io.Arp.Enabled = true;
            _resources = io;
            io.Arp.Spoofed = WakeLoop;
            io.Arp.Start();
            Announce(io.Arp);
            _log.Started(Describe(o));
            if (ThreadPriority.RaiseAll() is not 0 and var errno)
            {
                _log.PriorityNotRaised(Errno.Name(errno));
            }
            using var notifier = new ServiceNotifier(SystemdNotify.FromEnvironment());
            _notifier = notifier;
            using var waiter = new LoopWaiter(io.Adverts.Handle);
            _waiter = waiter;
            io.Control.Queued = waiter.Wake;
            var probes = _health.Start(stopAll.Token);
            var migrationPushes = _migration is null ? Task.CompletedTask : Task.Run(() => _migration.PushLoopAsync(stopAll.Token), CancellationToken.None);
            using var stopping = stopAll.Token.Register(waiter.Wake);
            // One dedicated thread owns all state and sleeps in ppoll until there is work: an advert,
            // a request, or its next deadline (NextDeadline). No timer ticks while nothing happens.
            exit = await Outcome(DedicatedThread.Start("l2bal loop", () => RunLoop(verifier, io, waiter, stopAll.Token))).ConfigureAwait(false);
            if (exit == 0)
            {
                notifier.Stopping();
            }
            await LeaveAsync(io.Adverts).ConfigureAwait(false);
            await stopAll.CancelAsync().ConfigureAwait(false);
            await probes.ConfigureAwait(false);
            await migrationPushes.ConfigureAwait(false);
            _waiter = null;
        }
        finally
        {
            await io.DisposeAsync().ConfigureAwait(false);
        }
        return exit;
    }

    /// <summary>How the loop ended, logged once: 0 for a requested stop, 1 for an error.</summary>
    private async Task<int> Outcome(Task loop)
    {
        try
        {
            await loop.ConfigureAwait(false);
            _log.Stopping();
            return 0;
        }
        catch (OperationCanceledException)
        {
            _log.Stopping();
            return 0;
        }
        catch (KernelFilterException e)
        {
            // The filter can no longer be changed (its tables were deleted by force, or the kernel
            // refused): stop rather than advertise ownership this node cannot enforce.
            _log.KernelFilterFailed(e.Message);
            return 1;
        }
        catch (Exception e)
        {
            _log.Unexpected(e);
            return 1;
        }
    }

    public void Dispose()
    {
        _keys.Dispose();
        _health.Dispose();
        _migration?.Dispose();
    }

    /// <summary>The loop: step, answer what is queued, sleep until the next deadline or event.</summary>
    private void RunLoop(AdvertVerifier verifier, NodeResources io, LoopWaiter waiter, CancellationToken stop)
    {
        ThreadPriority.RaiseAll();
        // Adverts must leave on time while the proxy saturates the node's CPUs: a late advert is
        // a false death at peers. Real-time priority makes the loop run the moment it wakes.
        if (ThreadPriority.MakeCurrentThreadRealTime() is not 0 and var errno)
        {
            _log.RealTimeRefused(ThreadPriority.RealTimePriority, ThreadPriority.Nice, Errno.Name(errno));
        }
        _lastStepAt = Now; // the stall check measures from the loop's start, not the daemon's
        _policy.StartListening(_lastStepAt);
        _notifier.Ready(_engine.LocalState, _engine.Held.Count, _options.Buckets, _lastStepAt);
        while (!stop.IsCancellationRequested)
        {
            var began = Now;
            Step(verifier, io);
            AnswerQueued(io.Control);
            _counters.Woke();
            _counters.Stepped(Now - began, began);
            _notifier.Stepped(_engine.LocalState, _engine.Held.Count, _options.Buckets, Now);
            waiter.Wait(NextDeadline(Now) - Now + DeadlineSlack);
        }
    }

    /// <summary>
    /// When the loop must run again if no advert or request comes first: the engine's next
    /// deadline (a peer's dead time running out, the next advert, a claim gate opening), the
    /// lease renewal (due with each advert), the drain check, the end of a conflict. Everything
    /// else that can change a decision wakes the loop itself.
    /// </summary>
    private TimeSpan NextDeadline(TimeSpan now)
    {
        var next = _engine.NextDeadline(now);
        foreach (var due in (ReadOnlySpan<TimeSpan>)[_lastLease + _options.AdvertInterval, _lastDrainCheck + DrainCheckPeriod, _policy.ConflictEnds(now), _notifier.NextPing, _spoofWatch.NextDeadline])
        {
            next = due < next ? due : next;
        }
        return next;
    }

    /// <summary>One step of the loop, in the order its decisions depend on each other.</summary>
    private void Step(AdvertVerifier verifier, NodeResources io)
    {
        var now = Now;
        // What the kernel holds now: a restart below empties the engine's set, and the kernel
        // must then be told, even though the engine itself sees no change in this step.
        var before = _engine.Held;
        NoteStallAndCarrier(io.Carrier, now);
        TakeAdverts(verifier, io.Adverts, now);
        NoteSegment(io, now);
        if (_policy.ChooseState(_engine.LocalState, _health.View, now) is { } change)
        {
            Record(change);
            _engine.LocalState = change.State;
        }
        _engine.Weight = Volatile.Read(ref _weight);
        if (_engine.KnowsWeights)
        {
            _engine.IgnoreWeights = _policy.ChooseAdvert(_engine.Peers.Keys.Where(_engine.IsAlive), now).Version < AdvertCodec.Version2;
        }
        var step = _engine.Step(now);
        foreach (var e in _engine.TakeEvents())
        {
            Record(e);
        }
        var heldChanged = !step.Held.Equals(before);
        if (heldChanged)
        {
            _counters.OwnershipChanged();
        }
        // Released buckets keep passing the early drop while this node has flows in them.
        var drainingChanged = _policy.Draining.Follow(before, step.Held, now) | TakeDrainRead();
        CheckDrainsWhenDue(now);
        var slice = _policy.GrantsSlice(now);
        if (heldChanged || drainingChanged || slice != _sliceGranted)
        {
            _filter.Apply(step.Held, _policy.Draining.AcceptedWith(step.Held), slice, _options.LeaseTime);
            _sliceGranted = slice;
            LeaseRenewed(now);
            if (heldChanged && before.Count == 0 && step.Held.Count > 0)
            {
                Announce(io.Arp);
            }
        }
        else if (step.AdvertiseNow || now - _lastLease >= _options.AdvertInterval)
        {
            // With each advert (and at least every interval): a datagram the filter's output chain
            // turns into a lease refresh (NftRuleset.Install, lease rule; its cost: docs/benchmarks.md#kernel-mechanics).
            _filter.RenewLease();
            LeaseRenewed(now);
        }
        if (step.AdvertiseNow)
        {
            Send(io.Adverts, step.Plan.Settled);
        }
    }

    /// <summary>
    /// What this wake-up means: time the loop could not hear peers does not count toward their
    /// silence; after a stall beyond the lease (the kernel stopped taking new flows here, peers may
    /// have covered) or without carrier, hold nothing and listen again before claiming.
    /// </summary>
    private void NoteStallAndCarrier(Carrier carrier, TimeSpan now)
    {
        var gap = now - _lastStepAt;
        _lastStepAt = now;
        var wake = _policy.Wake(gap, carrier.Up(now));
        _engine.DiscountSilence(wake.Unheard, now);
        if (wake.Stalled)
        {
            Record(new Stalled(gap.TotalMilliseconds, _options.LeaseTime.TotalMilliseconds));
            _engine.Restart(now, ReleaseCause.Stall);
        }
        switch (wake.Link)
        {
            case LinkNews.WentDown:
                Record(new LinkDown(_options.Interface));
                goto case LinkNews.StillDown;
            case LinkNews.StillDown:
                // Peers cover this node's buckets and cannot hear it: when the link returns it
                // listens first and gets its buckets back by the hand-over.
                _engine.Restart(now, ReleaseCause.LinkDown);
                break;
            case LinkNews.CameUp:
                Record(new LinkUp(_options.Interface));
                _engine.Restart(now, ReleaseCause.LinkDown);
                break;
            default:
                break;
        }
    }

    /// <summary>Records an event: kept for status, counted, logged with its own id.</summary>
    private void Record(BalancerEvent e)
    {
        var stamped = _journal.Add(e, DateTime.UtcNow, Now);
        _counters.Count(e.Kind);
        _log.Event(stamped, _options.NodeId);
    }

    /// <summary>Applies a finished conntrack read to the draining set; returns whether it changed.</summary>
    private bool TakeDrainRead()
    {
        if (_drainRead is not { IsCompleted: true } read)
        {
            return false;
        }
        _drainRead = null;
        if (!read.IsCompletedSuccessfully)
        {
            _log.ConntrackReadFailed(read.Exception?.InnerException?.Message ?? "cancelled");
            return false;
        }
        var finished = _policy.Draining.Prune(read.Result.StartedAt, read.Result.Flows);
        if (finished > 0)
        {
            Record(new DrainFinished(finished, _policy.Draining.Count));
        }
        return finished > 0;
    }

    /// <summary>Once a second, while buckets drain: reads conntrack (milliseconds per thousand flows) off the loop.</summary>
    private void CheckDrainsWhenDue(TimeSpan now)
    {
        if (now - _lastDrainCheck < DrainCheckPeriod)
        {
            return;
        }
        _lastDrainCheck = now;
        ThreadPriority.RaiseAll();
        if (_policy.Draining.Count > 0 && _drainRead is null)
        {
            var startedAt = now;
            _drainRead = Task.Run(() => (startedAt, _filter.FlowsByBucket()));
            _drainRead.ContinueWith(_ => WakeLoop(), TaskScheduler.Default);
        }
    }

    /// <summary>Wakes the loop from any thread (a probe's verdict, a finished read, a scrape).</summary>
    private void WakeLoop() => _waiter?.Wake();

    /// <summary>Sends a gratuitous ARP (VIP is at the cluster MAC), so neighbours' caches point at the cluster.</summary>
    private void Announce(ArpResponder arp)
    {
        try
        {
            arp.SendGratuitous();
        }
        catch (IOException e)
        {
            _log.GratuitousArpFailed(e.Message);
        }
        _spoofWatch.Announced(Now);
    }

    /// <summary>
    /// Peers take a leaving node's buckets the moment they hear it leave, so the kernel stops
    /// taking new flows here first (established ones live until the tables go). If that fails,
    /// say nothing: peers then cover after the dead time, when this process and its owner tables
    /// are gone.
    /// </summary>
    private async Task LeaveAsync(AdvertChannel adverts)
    {
        if (_engine.Held.Count > 0)
        {
            try
            {
                _filter.Apply(new BucketSet(_options.Buckets), _policy.Draining.AcceptedWith(_engine.Held), _sliceGranted, _options.LeaseTime);
            }
            catch (Exception e) when (e is KernelFilterException or InvalidOperationException)
            {
                _log.LeaveReleaseFailed(e.Message);
                return;
            }
        }
        _engine.LocalState = AdvertState.Leaving;
        for (var i = 0; i < 2; i++)
        {
            Send(adverts, settled: false);
            await Task.Delay(TimeSpan.FromMilliseconds(5)).ConfigureAwait(false);
        }
    }

    /// <summary>The settings the started line names.</summary>
    private string Describe(BalancerOptions o) =>
        $"node {o.NodeId} of {o.NodeCount} on {o.Interface}: VIP {string.Join(" ", new[] { o.Vip, o.Vip6 }.OfType<System.Net.IPAddress>())}, cluster MAC {_settings.ClusterMac} ({BalancerSettings.MacModeName(o.MacMode)}), " +
        $"{o.Buckets} buckets, seed 0x{o.EffectiveSeed:x8}, adverts every {o.AdvertInterval.TotalMilliseconds:0} ms, dead after {o.DeadTime.TotalMilliseconds:0} ms, " +
        $"port slice {_settings.OwnSlice}, health {HealthProbeSpec.Describe(o.Health)}; listening for peers for {o.DeadTime.TotalMilliseconds:0} ms before claiming buckets";
}
