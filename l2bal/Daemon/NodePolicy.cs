using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Health;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>What makes this node yield (hold no bucket and no port slice), in typed form and in words.</summary>
/// <param name="Kind">What conflicts.</param>
/// <param name="Peer">The node id the conflicting advert carried (0 when it cannot be trusted).</param>
/// <param name="Description">For people: the log line and <c>status</c>.</param>
internal sealed record NodeConflict(ConflictKind Kind, int Peer, string Description);

/// <summary>What one wake-up of the loop means before it reads anything.</summary>
/// <param name="Unheard">Time the loop did not run beyond its longest sleep: peers' silence in it does not count.</param>
/// <param name="Stalled">The loop did not run for longer than the lease: release everything and listen again.</param>
/// <param name="Link">The carrier's news: whether the link went down, stays down, came back, or nothing changed.</param>
internal readonly record struct WakeVerdict(TimeSpan Unheard, bool Stalled, LinkNews Link);

/// <summary>What the carrier says since the last wake-up.</summary>
internal enum LinkNews
{
    /// <summary>Up, as before.</summary>
    Unchanged,

    /// <summary>Carrier lost at this wake-up.</summary>
    WentDown,

    /// <summary>Still without carrier.</summary>
    StillDown,

    /// <summary>Carrier back at this wake-up.</summary>
    CameUp,
}

/// <summary>
/// This node's own decisions, apart from membership (MembershipEngine): which state it
/// advertises and why (health, drain, conflicts), whether it may use its port slice, what a
/// wake-up after a gap means (a stall, the carrier), and which released buckets still drain.
/// Pure: inputs in, decisions out, time an explicit argument, no I/O (docs/conventions.md §7, 33);
/// the daemon's loop feeds it and applies what it decides.
/// </summary>
internal sealed partial class NodePolicy
{
    private static readonly TimeSpan Never = TimeSpan.FromDays(-1);
    private readonly int _nodeId;
    private readonly ulong _incarnation;
    private readonly TimeSpan _longestSleep;
    private readonly TimeSpan _deadTime;
    private readonly TimeSpan _lease;
    private readonly string? _probe;
    private TimeSpan? _listeningSince;
    private TimeSpan _conflictSeenAt = Never;
    private NodeConflict? _conflict;
    private TimeSpan _badKeySeenAt = Never;
    private bool _verifiedAny;
    private bool _everHealthy;
    private NodeConflict? _conflictAtLastChoice;
    private bool _linkDown;

    /// <param name="nodeId">This node's id.</param>
    /// <param name="incarnation">This process's incarnation (its start time): the older of two conflicting nodes stays.</param>
    /// <param name="longestSleep">The longest the loop sleeps between two steps (an advert interval, plus slack).</param>
    /// <param name="deadTime">How long a conflict lasts after its last advert, and how long the node listens before using its slice.</param>
    /// <param name="lease">The kernel lease: a gap longer than this is a stall.</param>
    /// <param name="probe">The health probe in words, or null when none is configured.</param>
    /// <param name="buckets">The cluster's bucket count.</param>
    public NodePolicy(int nodeId, ulong incarnation, TimeSpan longestSleep, TimeSpan deadTime, TimeSpan lease, string? probe, int buckets)
    {
        _nodeId = nodeId;
        _incarnation = incarnation;
        _longestSleep = longestSleep;
        _deadTime = deadTime;
        _lease = lease;
        _probe = probe;
        Draining = new DrainSet(buckets);
    }

    /// <summary>The operator asked to drain (<c>l2bal drain</c>) and not to undrain since.</summary>
    public bool DrainRequested { get; set; }

    /// <summary>Released buckets that still carry this node's established flows.</summary>
    public DrainSet Draining { get; }

    /// <summary>The loop starts: from now on it hears peers (the slice's dead time of listening starts).</summary>
    public void StartListening(TimeSpan now) => _listeningSince = now;

    /// <summary>What a wake-up <paramref name="gap"/> after the previous one means, with the carrier as read now.</summary>
    public WakeVerdict Wake(TimeSpan gap, bool carrier)
    {
        var news = (carrier, _linkDown) switch
        {
            (false, false) => LinkNews.WentDown,
            (false, true) => LinkNews.StillDown,
            (true, true) => LinkNews.CameUp,
            _ => LinkNews.Unchanged,
        };
        _linkDown = !carrier;
        return new WakeVerdict(gap - _longestSleep, gap > _lease, news);
    }

    /// <summary>A valid advert was accepted: from now on, adverts that fail the HMAC cannot make this node yield.</summary>
    public void OnAdvertAccepted() => _verifiedAny = true;

    /// <summary>Whether an advert has ever been verified here (then nothing that fails the HMAC makes this node yield).</summary>
    public bool VerifiedAny => _verifiedAny;

    /// <summary>
    /// Records a misconfiguration seen in an advert. Two nodes with one id, or with different
    /// cluster settings, would compute different tables and answer the same clients: the node
    /// that started later yields while the conflict lasts, so a misconfigured newcomer never
    /// disturbs a running cluster. Adverts that fail the HMAC cannot be trusted to say who started
    /// first; a node that has never accepted a valid advert yields to them.
    /// </summary>
    public void OnAdvertRejected(AdvertRejection rejection, in Advert advert, MacAddress source, TimeSpan now)
    {
        switch (rejection)
        {
            case AdvertRejection.FromSelf when advert.Incarnation < _incarnation:
                _conflictSeenAt = now;
                _conflict = new NodeConflict(ConflictKind.DuplicateNodeId, advert.NodeId,
                    $"another node ({source}) runs with node id {_nodeId} and started earlier");
                break;
            case AdvertRejection.ConfigMismatch when advert.Incarnation < _incarnation:
                _conflictSeenAt = now;
                _conflict = new NodeConflict(ConflictKind.OtherSettings, advert.NodeId,
                    $"node {advert.NodeId} ({source}) runs with other cluster settings (VIP, buckets, seed or node count {advert.NodeCount}) and started earlier");
                break;
            case AdvertRejection.BadHmac or AdvertRejection.UnknownKey when !_verifiedAny:
                _badKeySeenAt = now;
                break;
            default:
                break;
        }
    }

    /// <summary>Why this node must yield now, or null: a conflicting advert heard within the last dead time.</summary>
    public NodeConflict? Conflict(TimeSpan now)
    {
        if (now - _conflictSeenAt <= _deadTime)
        {
            return _conflict;
        }
        if (now - _badKeySeenAt <= _deadTime && !_verifiedAny)
        {
            var heard = string.Join(", ", ForeignKeys(now).Select(f => f.KeyId == 0 ? $"a version-1 key from {f.Source}" : $"{AdvertKeys.Format(f.KeyId)} from {f.Source}"));
            return new NodeConflict(ConflictKind.UnverifiedKey, 0,
                $"adverts on this segment fail authentication and none passes (key ids heard: {(heard.Length == 0 ? "none named" : heard)}; this node's: {AdvertKeys.Format(_currentKeyId)}): is the key file the cluster's?");
        }
        return null;
    }

    /// <summary>When a conflict now in force runs out (the loop must step then), or <see cref="TimeSpan.MaxValue"/>.</summary>
    public TimeSpan ConflictEnds(TimeSpan now)
    {
        var next = TimeSpan.MaxValue;
        foreach (var seen in (ReadOnlySpan<TimeSpan>)[_conflictSeenAt, _badKeySeenAt])
        {
            var end = seen + _deadTime + TimeSpan.FromTicks(1);
            if (end > now && end < next)
            {
                next = end;
            }
        }
        return next;
    }

    /// <summary>
    /// The state this node should advertise now, as a change from <paramref name="current"/> with
    /// its reason, or null when it stays. Drain wins over everything, a conflict over health.
    /// </summary>
    public LocalStateChanged? ChooseState(AdvertState current, HealthView health, TimeSpan now)
    {
        var conflict = Conflict(now);
        var wanted = DrainRequested ? AdvertState.Draining
            : conflict is not null ? AdvertState.Unhealthy
            : health.Healthy ? AdvertState.Active : AdvertState.Unhealthy;
        if (wanted == current)
        {
            return null;
        }
        var change = wanted switch
        {
            AdvertState.Draining => new LocalStateChanged(wanted, StateReason.DrainRequested),
            AdvertState.Unhealthy when conflict is not null =>
                new LocalStateChanged(wanted, StateReason.Conflict, Conflict: conflict.Kind, Peer: conflict.Peer, Detail: conflict.Description),
            AdvertState.Unhealthy when !_everHealthy =>
                new LocalStateChanged(wanted, StateReason.WaitingForFirstProbe, Detail: _probe),
            AdvertState.Unhealthy =>
                new LocalStateChanged(wanted, StateReason.HealthFailing, health.LastFailure.Failure, Detail: $"{_probe}: {health.LastFailure.Detail}"),
            _ => new LocalStateChanged(wanted,
                current == AdvertState.Draining ? StateReason.UndrainRequested
                : _conflictAtLastChoice is not null ? StateReason.ConflictEnded
                : _everHealthy ? StateReason.HealthPassingAgain
                : StateReason.HealthPassing,
                Detail: _probe),
        };
        _everHealthy |= wanted == AdvertState.Active;
        _conflictAtLastChoice = conflict;
        return change;
    }

    /// <summary>
    /// Whether this node may use its port slice now. Like the buckets, only after a dead time of
    /// listening and only while no conflict makes it yield: a node started with another node count
    /// or a taken node id computes a slice that is its peers' too, and would answer their BIND and
    /// UDP flows' packets with RSTs and port-unreachables. The listening is timed from the loop's
    /// start, not from the membership's restartable listen time: a node that listens again after a
    /// stall or a link-down keeps its slice, whose established flows the early drop would cut.
    /// </summary>
    public bool GrantsSlice(TimeSpan now) => _listeningSince is { } since && now - since >= _deadTime && Conflict(now) is null;
}
