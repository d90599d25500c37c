using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Control;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Health;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>
/// The l2bal daemon: one loop that owns all state. Every tick it takes accepted adverts, applies
/// the health and drain state, steps the membership engine, writes ownership changes to the
/// kernel filter (and renews its lease every interval), advertises, and answers control
/// requests. The network and kernel pieces only apply what the loop decided.
/// </summary>
internal sealed partial class BalancerDaemon
{
    /// <summary>How often draining buckets are checked against conntrack: once a second.</summary>
    private static readonly TimeSpan DrainCheckPeriod = TimeSpan.FromSeconds(1);

    private readonly BalancerOptions _options;
    private readonly byte[] _key;

    /// <summary>The HMAC that signs this node's adverts, reused (the loop's thread only).</summary>
    private readonly System.Security.Cryptography.IncrementalHash _signer;
    private readonly BalancerLog _log;
    private readonly BalancerCounters _counters = new();
    private readonly IKernelFilter _filter;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ConcurrentQueue<TaskCompletionSource<string>> _metricsRequests = new();
    private readonly HealthPolicy _health;
    private readonly ulong _incarnation = (ulong)(DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
    private readonly UInt128 _configDigest;
    private readonly MembershipEngine _engine;
    private readonly MacAddress _clusterMac;
    private readonly BucketSet _draining;
    private ulong _sequence;
    private bool _drainRequested;
    private TimeSpan _lastLease = TimeSpan.FromDays(-1);
    private TimeSpan _lastStepAt;
    private bool _linkDown;
    private TimeSpan _carrierCheckedAt = TimeSpan.FromDays(-1);
    private bool _carrier = true;
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _carrierFile;
    private TimeSpan _lastDrainCheck;
    private Task<(TimeSpan StartedAt, IReadOnlyDictionary<int, int> Flows)>? _drainRead;
    private readonly TimeSpan[] _drainingSince;
    private volatile bool _healthy;
    private bool _everHealthy;
    private TimeSpan _conflictSeenAt = TimeSpan.FromDays(-1);
    private string? _conflictReason;
    private string? _lastConflictReason;
    private TimeSpan _loopStartedAt;
    private bool _sliceGranted;
    private TimeSpan _badKeySeenAt = TimeSpan.FromDays(-1);
    private volatile string? _healthFailure;
    private Action? _wake;
    private long _wakeups;

    public BalancerDaemon(BalancerOptions options, byte[] key, BalancerLog log, IKernelFilter filter)
    {
        _options = options;
        _key = key;
        _signer = System.Security.Cryptography.IncrementalHash.CreateHMAC(System.Security.Cryptography.HashAlgorithmName.SHA256, key);
        _log = log;
        _filter = filter;
        _health = new HealthPolicy(options.HealthFall, options.HealthRise);
        // Without a probe the node is healthy; with one it is not until the first probe passes.
        _healthy = options.Health.Kind == HealthProbeKind.None;
        _healthFailure = _health.LastFailure;
        _configDigest = AdvertConfigDigest.Compute(options.Vip, options.Buckets, options.EffectiveSeed, options.NodeCount, options.EffectiveClusterId);
        _engine = new MembershipEngine(options.NodeId, options.NodeCount, options.Buckets, options.AdvertInterval, options.DeadTime, options.SettleTime, Now);
        _clusterMac = options.MacMode == MacMode.Multicast
            ? ClusterMac.Multicast(options.EffectiveClusterId)
            : ClusterMac.UnicastFlood(options.EffectiveClusterId);
        _draining = new BucketSet(options.Buckets);
        _drainingSince = new TimeSpan[options.Buckets];
    }

    private TimeSpan Now => _clock.Elapsed;

    /// <summary>
    /// Added to every sleep: a wake-up a hair early would find nothing due and sleep again for
    /// microseconds; 100 µs late costs nothing measurable.
    /// </summary>
    private static readonly TimeSpan DeadlineSlack = TimeSpan.FromMilliseconds(0.1);

    /// <summary>What the kernel filter of a node run with <paramref name="o"/> is installed with.</summary>
    internal static FilterSettings FilterSettingsFor(BalancerOptions o, MacAddress clusterMac)
    {
        var slice = PortSlice.For(o.NodeId, o.NodeCount);
        return new FilterSettings(o.Interface, o.Vip, clusterMac, o.MacMode, o.Buckets, o.EffectiveSeed,
            new PortSpan(slice.Low, slice.High), new PortSpan(PortSlice.RangeLow, PortSlice.RangeHigh),
            ServicePorts: [.. o.Services.Select(v => (v.Protocol, v.Port))], Lease: o.LeaseTime);
    }

    public async Task<int> RunAsync(CancellationToken stop)
    {
        var o = _options;
        var settings = FilterSettingsFor(o, _clusterMac);
        NodeSetup? node = null;
        ArpResponder? arp = null;
        AdvertChannel? adverts = null;
        ControlServer? control = null;
        MetricsEndpoint? metrics = null;
        using var verifier = new AdvertVerifier(_key, o.EffectiveClusterId, o.NodeId, _configDigest);
        try
        {
            node = NodeSetup.Apply(o.Interface, o.Vip, o.MacMode == MacMode.Multicast);
            _filter.Install(settings);
            arp = ArpResponder.Open(o.Interface, o.Vip, _clusterMac);
            adverts = AdvertChannel.Open(o.Interface);
            control = new ControlServer(o.ControlPath);
            if (o.Metrics is { } metricsEndPoint)
            {
                metrics = new MetricsEndpoint(metricsEndPoint, RequestMetrics);
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or KernelFilterException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
        {
            _log.Error(EventIds.Started, $"cannot start on {o.Interface}: {e.Message}");
            await CleanupAsync(node, arp, adverts, control, metrics).ConfigureAwait(false);
            return 1;
        }
        // Every running node answers who-has for the VIP identically (cluster MAC); a node that is down answers nothing.
        arp.Enabled = true;
        arp.Start();
        Announce(arp);
        _log.Info(EventIds.Started,
            $"node {o.NodeId} of {o.NodeCount} on {o.Interface}: VIP {o.Vip}, cluster MAC {_clusterMac} ({(o.MacMode == MacMode.Multicast ? "multicast" : "unicast-flood")}), " +
            $"{o.Buckets} buckets, seed 0x{o.EffectiveSeed:x8}, adverts every {o.AdvertInterval.TotalMilliseconds:0} ms, dead after {o.DeadTime.TotalMilliseconds:0} ms, " +
            $"port slice {settings.OwnSlice.Low}-{settings.OwnSlice.High}, health {o.Health}; listening for peers for {o.DeadTime.TotalMilliseconds:0} ms before claiming buckets");

        if (ThreadPriority.RaiseAll() is not 0 and var errno)
        {
            _log.Warning(EventIds.Started, $"cannot raise thread priority (errno {errno}): under CPU saturation peers may see this node's adverts late");
        }
        try
        {
            // Before the first advert: a loop that stops to compile code is silent to its peers.
            LoopRehearsal.Run(o, _key, _configDigest, settings);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _log.Warning(EventIds.Unexpected, $"rehearsing the loop failed ({e.Message}): its first steps may be slow while code compiles");
        }
        using var waiter = new LoopWaiter(adverts.Handle);
        _wake = waiter.Wake;
        control.Queued = waiter.Wake;
        var probes = o.Health.Kind == HealthProbeKind.None ? Task.CompletedTask : StartThread("l2bal probe", () => ProbeLoop(stop));
        using var stopping = stop.Register(waiter.Wake);
        // One dedicated thread owns all state and sleeps in ppoll until there is work: an advert,
        // a request, or its next deadline (NextDeadline). No timer ticks while nothing happens.
        var loop = StartThread("l2bal loop", () => RunLoop(verifier, adverts, arp, control, waiter, stop));
        try
        {
            await loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        catch (KernelFilterException e)
        {
            // The filter can no longer be changed (its tables were deleted by force, or the kernel refused):
            // stop rather than advertise ownership this node cannot enforce.
            _log.Error(EventIds.KernelError, $"kernel filter failed, stopping: {e.Message}");
            await LeaveAsync(adverts).ConfigureAwait(false);
            await CleanupAsync(node, arp, adverts, control, metrics).ConfigureAwait(false);
            return 1;
        }
        catch (Exception e)
        {
            _log.Error(EventIds.Unexpected, $"unexpected error, stopping: {e}");
            await LeaveAsync(adverts).ConfigureAwait(false);
            await CleanupAsync(node, arp, adverts, control, metrics).ConfigureAwait(false);
            return 1;
        }
        _log.Info(EventIds.Stopping, $"stopping: telling peers this node leaves, removing its rules and the VIP");
        await LeaveAsync(adverts).ConfigureAwait(false);
        await CleanupAsync(node, arp, adverts, control, metrics).ConfigureAwait(false);
        await probes.ConfigureAwait(false);
        return 0;
    }

    /// <summary>The loop: step, answer what is queued, sleep until the next deadline or event.</summary>
    private void RunLoop(AdvertVerifier verifier, AdvertChannel adverts, ArpResponder arp, ControlServer control, LoopWaiter waiter, CancellationToken stop)
    {
        ThreadPriority.RaiseAll();
        // Adverts must leave on time while the proxy saturates the node's CPUs: a late advert is
        // a false death at peers. Real-time priority makes the loop run the moment it wakes.
        if (ThreadPriority.MakeCurrentThreadRealTime() is not 0 and var errno)
        {
            _log.Warning(EventIds.Started, $"cannot give the loop real-time priority (SCHED_RR {ThreadPriority.RealTimePriority}, errno {Errno.Name(errno)}): it runs at nice {ThreadPriority.Nice}, and under CPU saturation peers may see its adverts late");
        }
        _lastStepAt = Now; // the stall check measures from the loop's start, not the daemon's
        _loopStartedAt = _lastStepAt;
        while (!stop.IsCancellationRequested)
        {
            Step(verifier, adverts, arp);
            while (control.Requests.TryRead(out var request))
            {
                var reply = request.Reply;
                _ = HandleAsync(request.Text).ContinueWith(t => reply.TrySetResult(Answer(t)), TaskScheduler.Default);
            }
            while (_metricsRequests.TryDequeue(out var scrape))
            {
                _ = RenderMetricsAsync().ContinueWith(t => scrape.TrySetResult(Answer(t)), TaskScheduler.Default);
            }
            Interlocked.Increment(ref _wakeups);
            waiter.Wait(NextDeadline(Now) - Now + DeadlineSlack);
        }
    }

    /// <summary>A finished answer, or the error that ended it (the asker always gets a reply).</summary>
    private static string Answer(Task<string> task) =>
        task.IsCompletedSuccessfully ? task.Result : $"error: {task.Exception?.InnerException?.Message ?? "cancelled"}\n";

    /// <summary>
    /// When the loop must run again if no advert or request comes first: the engine's next
    /// deadline (a peer's dead time running out, the next advert, a claim gate opening), the
    /// lease renewal (due with each advert), the drain check, the end of a conflict. The carrier
    /// is read on any wake at least three quarters of an interval after the last read, so at
    /// least once an interval with the adverts. Everything else that can change a decision wakes
    /// the loop itself.
    /// </summary>
    private TimeSpan NextDeadline(TimeSpan now)
    {
        var next = _engine.NextDeadline(now);
        next = Min(next, _lastLease + _options.AdvertInterval);
        next = Min(next, _lastDrainCheck + DrainCheckPeriod);
        foreach (var seen in (ReadOnlySpan<TimeSpan>)[_conflictSeenAt, _badKeySeenAt])
        {
            if (seen + _options.DeadTime >= now)
            {
                next = Min(next, seen + _options.DeadTime + TimeSpan.FromTicks(1));
            }
        }
        return next;

        static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
    }

    private void Step(AdvertVerifier verifier, AdvertChannel adverts, ArpResponder arp)
    {
        var now = Now;
        // What the kernel holds now: a restart below empties the engine's set, and the kernel
        // must then be told, even though the engine itself sees no change in this step.
        var before = _engine.Held;
        // The loop sleeps at most one interval between steps (NextDeadline): time beyond that it
        // did not run, and could not hear peers, so their silence in it does not count.
        _engine.DiscountSilence(now - _lastStepAt - _options.AdvertInterval - DeadlineSlack, now);
        if (now - _lastStepAt > _options.LeaseTime)
        {
            // This loop did not run for longer than the lease (SIGSTOP, a long pause): the kernel
            // stopped taking new flows here and peers may have declared this node dead and taken
            // its buckets. Hold nothing and listen again before claiming, as after a start.
            // Holding nothing (just started, still listening), it only listens longer: no warning.
            if (_engine.Held.Count > 0)
            {
                _log.Warning(EventIds.Membership,
                    $"this daemon was stalled for {(now - _lastStepAt).TotalMilliseconds:0} ms (lease {_options.LeaseTime.TotalMilliseconds:0} ms): releasing every bucket and listening for peers again");
            }
            _engine.Restart(now);
        }
        _lastStepAt = now;
        if (!CarrierUp(now))
        {
            // Cut off from the segment: peers cover this node's buckets and cannot hear it. Hold
            // nothing, so that when the link returns this node listens first and gets its buckets
            // back by the hand-over instead of answering clients the covering nodes now serve.
            if (_engine.Held.Count > 0 || !_linkDown)
            {
                _log.Warning(EventIds.Membership, $"link {_options.Interface} is down: releasing every bucket until it is back");
            }
            _linkDown = true;
            _engine.Restart(now, "with the link down");
        }
        else if (_linkDown)
        {
            _linkDown = false;
            _log.Info(EventIds.Membership, $"link {_options.Interface} is up: listening for peers for {_options.DeadTime.TotalMilliseconds:0} ms before claiming buckets");
            _engine.Restart(now);
        }
        while (adverts.TryReceive(out var frame))
        {
            if (verifier.TryAccept(frame.Payload, out var advert, out var rejection))
            {
                _counters.Received();
                _engine.OnAdvert(advert, now);
            }
            else
            {
                var total = _counters.Reject(rejection);
                if (rejection == AdvertRejection.FromSelf && advert.Incarnation == _incarnation)
                {
                    continue; // our own frame, looped back
                }
                _log.AdvertRejected(rejection, frame.Source.ToString(), total);
                NoteConflict(rejection, advert, frame.Source, now);
            }
        }
        var conflict = Conflict(now);
        var wanted = _drainRequested ? AdvertState.Draining
            : conflict is not null ? AdvertState.Unhealthy
            : _healthy ? AdvertState.Active : AdvertState.Unhealthy;
        if (wanted != _engine.LocalState)
        {
            var why = wanted switch
            {
                AdvertState.Draining => "drain requested",
                AdvertState.Unhealthy when conflict is not null => $"refusing to take buckets or its port slice: {conflict}",
                AdvertState.Unhealthy when !_everHealthy => $"waiting for the first health probe {_options.Health} to pass: no clients before the service answers",
                AdvertState.Unhealthy => $"health probe {_options.Health} failing: {_healthFailure}",
                _ => _engine.LocalState == AdvertState.Draining ? "undrain requested"
                    : _lastConflictReason is not null ? $"no conflicting adverts for {_options.DeadTime.TotalMilliseconds:0} ms"
                    : _everHealthy ? $"health probe {_options.Health} passing again"
                    : _options.Health.Kind == HealthProbeKind.None ? "started" : $"health probe {_options.Health} passing",
            };
            _everHealthy |= wanted == AdvertState.Active;
            _log.Info(EventIds.Health, $"this node is now {MembershipEngine.Describe(wanted)}: {why}");
            _engine.LocalState = wanted;
            _lastConflictReason = conflict;
        }
        var step = _engine.Step(now);
        var heldChanged = !step.Held.Equals(before);
        // The port slice, like the buckets, only after a dead time of listening and only while no
        // conflict makes this node yield: a node started with another node count or a taken node
        // id computes a slice that is its peers' too, and would answer their BIND and UDP
        // flows' packets with RSTs and port-unreachables. The listening is timed from the loop's
        // start, not from the engine's restartable listen time: a node that listens again after a
        // stall or a link-down keeps its slice, whose established flows the early drop would cut.
        var slice = conflict is null && now - _loopStartedAt >= _options.DeadTime;
        var sliceChanged = slice != _sliceGranted;
        foreach (var change in _engine.TakeEvents())
        {
            _log.Info(change.NodeId == _options.NodeId ? EventIds.Ownership : EventIds.Membership, change.Change);
        }
        var drainingChanged = false;
        if (heldChanged)
        {
            // Released buckets keep passing the early drop while this node has flows in them.
            foreach (var bucket in before.Buckets())
            {
                if (!step.Held.Contains(bucket))
                {
                    _draining.Add(bucket);
                    _drainingSince[bucket] = now;
                    drainingChanged = true;
                }
            }
            foreach (var bucket in step.Held.Buckets())
            {
                if (_draining.Contains(bucket))
                {
                    _draining.Remove(bucket);
                    drainingChanged = true;
                }
            }
            _counters.OwnershipChanged();
        }
        if (_drainRead is { IsCompleted: true } read)
        {
            _drainRead = null;
            if (read.IsCompletedSuccessfully)
            {
                drainingChanged |= PruneDraining(read.Result);
            }
            else
            {
                _log.Warning(EventIds.KernelError, $"cannot read conntrack for draining buckets: {read.Exception?.InnerException?.Message}");
            }
        }
        if (now - _lastDrainCheck >= DrainCheckPeriod)
        {
            _lastDrainCheck = now;
            ThreadPriority.RaiseAll();
            if (_draining.Count > 0 && _drainRead is null)
            {
                // Reading conntrack takes milliseconds per thousand flows: off the loop.
                var startedAt = now;
                _drainRead = Task.Run(() => (startedAt, _filter.FlowsByBucket()));
                _drainRead.ContinueWith(_ => _wake?.Invoke(), TaskScheduler.Default);
            }
        }
        if (heldChanged || drainingChanged || sliceChanged)
        {
            var accepted = step.Held.Clone();
            foreach (var bucket in _draining.Buckets())
            {
                accepted.Add(bucket);
            }
            _filter.Apply(step.Held, accepted, slice, _options.LeaseTime);
            _sliceGranted = slice;
            _lastLease = now;
            if (heldChanged && before.Count == 0 && step.Held.Count > 0)
            {
                Announce(arp);
            }
        }
        else if (step.AdvertiseNow || now - _lastLease >= _options.AdvertInterval)
        {
            // With each advert (and at least every interval): a datagram the filter's output
            // chain turns into a lease refresh, about 3 µs (NftRuleset.Install, lease rule).
            _filter.RenewLease();
            _lastLease = now;
        }
        if (step.AdvertiseNow)
        {
            Send(adverts, step.Plan.Settled);
        }
    }

    /// <summary>
    /// Records a misconfiguration seen in an advert. Two nodes with one id, or with different
    /// cluster settings, would compute different tables and answer the same clients: the node
    /// that started later yields (holds nothing) while the conflict lasts, so a misconfigured
    /// newcomer never disturbs a running cluster. Adverts that fail the HMAC cannot be trusted to
    /// say who started first; a node that has never accepted a valid advert yields to them.
    /// </summary>
    private void NoteConflict(AdvertRejection rejection, in Advert advert, MacAddress source, TimeSpan now)
    {
        switch (rejection)
        {
            case AdvertRejection.FromSelf when advert.Incarnation < _incarnation:
                _conflictSeenAt = now;
                _conflictReason = $"another node ({source}) runs with node id {_options.NodeId} and started earlier";
                break;
            case AdvertRejection.ConfigMismatch when advert.Incarnation < _incarnation:
                _conflictSeenAt = now;
                _conflictReason = $"node {advert.NodeId} ({source}) runs with other cluster settings (VIP, buckets, seed or node count {advert.NodeCount}) and started earlier";
                break;
            case AdvertRejection.BadHmac when _counters.AdvertsReceived == 0:
                _badKeySeenAt = now;
                break;
            default:
                break;
        }
    }

    /// <summary>Why this node must hold nothing now, or null.</summary>
    private string? Conflict(TimeSpan now)
    {
        if (now - _conflictSeenAt <= _options.DeadTime)
        {
            return _conflictReason;
        }
        if (now - _badKeySeenAt <= _options.DeadTime && _counters.AdvertsReceived == 0)
        {
            return "adverts on this segment fail authentication and none passes: is the key file the cluster's?";
        }
        return null;
    }

    /// <summary>
    /// Whether the segment interface has carrier, read from sysfs at most once per advert
    /// interval (ip netns exec mounts the namespace's own /sys). Unknown counts as up.
    /// </summary>
    private bool CarrierUp(TimeSpan now)
    {
        if (now - _carrierCheckedAt < _options.AdvertInterval * 3 / 4)
        {
            return _carrier;
        }
        _carrierCheckedAt = now;
        Span<byte> value = stackalloc byte[8];
        try
        {
            // One open for the daemon's life, then one pread(2) at offset 0 per check (sysfs
            // renders the attribute afresh): no open, flock and close twenty times a second.
            _carrierFile ??= File.OpenHandle($"/sys/class/net/{_options.Interface}/carrier");
            var n = RandomAccess.Read(_carrierFile, value, 0);
            _carrier = n > 0 && value[0] != (byte)'0';
        }
        catch (IOException)
        {
            // Reading carrier of an interface that is administratively down fails with EINVAL: down.
            _carrier = !File.Exists($"/sys/class/net/{_options.Interface}/carrier");
        }
        catch (UnauthorizedAccessException)
        {
            _carrier = true; // unknown counts as up
        }
        return _carrier;
    }

    /// <summary>Sends a gratuitous ARP (VIP is at the cluster MAC), so neighbours' caches point at the cluster.</summary>
    private void Announce(ArpResponder arp)
    {
        try
        {
            arp.SendGratuitous();
        }
        catch (IOException e)
        {
            _log.Warning(EventIds.Membership, $"cannot send gratuitous ARP: {e.Message}");
        }
    }

    /// <summary>
    /// Drops from the draining set the buckets in which conntrack held no established flow of this
    /// node when it was read. Only buckets that were already draining when the read began: one
    /// released later may have taken a new flow the read did not see.
    /// </summary>
    private bool PruneDraining((TimeSpan StartedAt, IReadOnlyDictionary<int, int> Flows) read)
    {
        var finished = _draining.Buckets().Where(b => _drainingSince[b] < read.StartedAt && !read.Flows.ContainsKey(b)).ToList();
        foreach (var bucket in finished)
        {
            _draining.Remove(bucket);
        }
        if (finished.Count > 0)
        {
            _log.Info(EventIds.Drain, $"{finished.Count} released buckets have no flows left here; {_draining.Count} still draining");
        }
        return finished.Count > 0;
    }

    private void Send(AdvertChannel adverts, bool settled)
    {
        var advert = _engine.BuildAdvert(_options.EffectiveClusterId, _configDigest, _incarnation, ++_sequence, Now, settled);
        Span<byte> buffer = stackalloc byte[AdvertCodec.Length];
        AdvertCodec.Write(advert, _signer, buffer);
        try
        {
            adverts.Send(buffer);
            _counters.Sent();
        }
        catch (IOException e)
        {
            // A link that is down: peers will miss us, which is the truth.
            _log.Warning(EventIds.Membership, $"cannot send advert: {e.Message}");
        }
    }

    private async Task LeaveAsync(AdvertChannel? adverts)
    {
        if (adverts is null)
        {
            return;
        }
        // Peers take a leaving node's buckets the moment they hear it leave, so the kernel stops
        // taking new flows here first (established ones live until the tables go). If that fails,
        // say nothing: peers then cover after the dead time, when this process and its owner
        // tables are gone.
        if (_engine.Held.Count > 0)
        {
            try
            {
                var accepted = _engine.Held.Clone();
                foreach (var bucket in _draining.Buckets())
                {
                    accepted.Add(bucket);
                }
                _filter.Apply(new BucketSet(_options.Buckets), accepted, _sliceGranted, _options.LeaseTime);
            }
            catch (Exception e) when (e is KernelFilterException or InvalidOperationException)
            {
                _log.Warning(EventIds.KernelError, $"cannot release the buckets before leaving ({e.Message}): not announcing the leave, peers cover after the dead time");
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

    private async Task CleanupAsync(NodeSetup? node, ArpResponder? arp, AdvertChannel? adverts, ControlServer? control, MetricsEndpoint? metrics)
    {
        try
        {
            _filter.Remove();
        }
        catch (KernelFilterException e)
        {
            _log.Warning(EventIds.KernelError, $"removing the rules: {e.Message}");
        }
        if (arp is not null)
        {
            await arp.DisposeAsync().ConfigureAwait(false);
        }
        if (adverts is not null)
        {
            await adverts.DisposeAsync().ConfigureAwait(false);
        }
        if (control is not null)
        {
            await control.DisposeAsync().ConfigureAwait(false);
        }
        if (metrics is not null)
        {
            await metrics.DisposeAsync().ConfigureAwait(false);
        }
        node?.Undo();
        _carrierFile?.Dispose();
        _signer.Dispose();
    }

    /// <summary>Runs <paramref name="body"/> on a background thread of its own; the task ends with it (or with its exception).</summary>
    private static Task StartThread(string name, Action body)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                body();
                done.SetResult();
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.Start();
        return done.Task;
    }

    /// <summary>Probes the local service every health interval on a thread of its own (blocking probes, see HealthProbe).</summary>
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
                // A probe slower than the interval delays the next one instead of queueing a burst.
                next = next + interval > Now ? next + interval : Now + interval;
                HealthProbeResult? result;
                if (listen is null || _health.WantsFullProbe(sinceFull, FullProbeEvery))
                {
                    sinceFull = 0;
                    result = HealthProbe.Run(_options.Health, _options.HealthTimeout);
                }
                else
                {
                    sinceFull++;
                    result = CheckListening(ref listen);
                }
                if (result is { } r && _health.Record(r))
                {
                    _healthFailure = _health.LastFailure;
                    _healthy = _health.State == HealthState.Healthy;
                    _wake?.Invoke();
                }
            }
        }
        finally
        {
            listen?.Dispose();
        }
    }

    /// <summary>
    /// A healthy service gets the full probe (a TCP handshake and a SOCKS5 greeting) once in this
    /// many health intervals, and the listen check in the others: at 100 ms, a killed proxy is
    /// still seen within 100 ms, a hung one within 500 ms plus fall × the timeout. Measured in
    /// the failover bench (20 s idle): l2bal with the full probe every 100 ms 1.05–1.30 % of a
    /// core against 0.70–0.75 % with no probe.
    /// </summary>
    private const int FullProbeEvery = 5;

    /// <summary>
    /// The listen check, for a SOCKS5 or TCP probe of this node's own service (the VIP or a
    /// loopback address: a listening socket elsewhere is not in this kernel); null for others.
    /// </summary>
    private ListenCheck? OpenListenCheck()
    {
        var spec = _options.Health;
        if (spec.Kind is not (HealthProbeKind.Socks5 or HealthProbeKind.Tcp) || spec.EndPoint is not { } endPoint
            || !(endPoint.Address.Equals(_options.Vip) || IPAddress.IsLoopback(endPoint.Address)))
        {
            return null;
        }
        try
        {
            return ListenCheck.Open(endPoint);
        }
        catch (IOException e)
        {
            _log.Warning(EventIds.Health, $"cannot ask the kernel for listening sockets ({e.Message}): the full probe runs at every health interval");
            return null;
        }
    }

    /// <summary>The listen check's verdict: a failure when nothing listens, null (nothing to record) when something does.</summary>
    private HealthProbeResult? CheckListening(ref ListenCheck? listen)
    {
        try
        {
            return listen!.Listens() ? null : new HealthProbeResult($"nothing listens on {listen.EndPoint}", NothingListens: true);
        }
        catch (IOException e)
        {
            _log.Warning(EventIds.Health, $"the listen check failed ({e.Message}): the full probe runs at every health interval from now on");
            listen!.Dispose();
            listen = null;
            return null;
        }
    }

    /// <summary>A scrape: rendered by the loop, which owns the state.</summary>
    private Task<string> RequestMetrics()
    {
        var scrape = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        _metricsRequests.Enqueue(scrape);
        _wake?.Invoke();
        return scrape.Task;
    }

    /// <summary>The bucket of a client address, with the cluster's seed and bucket count.</summary>
    private int BucketOf(IPAddress client) => BucketHash.Bucket(client, _options.Buckets, _options.EffectiveSeed);
}
