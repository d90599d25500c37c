using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Cluster;

/// <summary>What this node knows of a peer from its latest accepted advert.</summary>
internal sealed record PeerState(AdvertState State, ulong ActiveView, ulong AliveView, TimeSpan LastHeard, uint HeldCount, bool Settled, ulong Incarnation = 0, WeightVector? Weights = null);

/// <summary>The outcome of one step: what the kernel must accept now, and whether to advertise now.</summary>
internal sealed record MembershipStep(BucketSet Held, bool HeldChanged, bool ViewChanged, bool AdvertiseNow, HandoverPlan Plan, OwnershipTable Target);

/// <summary>
/// The membership state machine of one node (docs/design.md#membership): peers from accepted
/// adverts, dead after the dead time, the view (which nodes are active), the ownership table
/// of the view, and the hand-over handshake (HandoverPlanner) with its two timing gates.
/// Pure: time is an explicit argument, no I/O (docs/conventions.md §7); the daemon feeds it adverts and ticks.
/// </summary>
internal sealed class MembershipEngine
{
    private const int TableCacheLimit = 64;
    private readonly Dictionary<int, PeerState> _peers = [];
    private readonly HashSet<int> _alive = [];
    private readonly Dictionary<(ulong Mask, WeightVector Weights), OwnershipTable> _tables = [];
    private readonly Dictionary<int, int> _heardWeights = [];
    private readonly WeightVector _defaultWeights;
    private WeightVector _advertisedWeights;
    private int _weight = Ownership.DefaultWeight;
    private bool _weightsHeard;
    private readonly List<BalancerEvent> _events = [];
    private TimeSpan _startedAt;
    private TimeSpan _advertisedAt;
    private TimeSpan _sentAt = TimeSpan.MinValue;
    private ulong _advertisedMask = ulong.MaxValue;
    private HandoverPlan? _lastPlan;
    private string? _lastPlanKey;

    public MembershipEngine(int self, int nodeCount, int buckets, TimeSpan advertInterval, TimeSpan deadTime, TimeSpan settleTime, TimeSpan now)
    {
        if (nodeCount is < 1 or > MembershipView.MaxNodes || self < 1 || self > nodeCount)
        {
            throw new ArgumentOutOfRangeException(nameof(self), "node id must be within 1..node count ≤ 64");
        }
        Self = self;
        NodeCount = nodeCount;
        Buckets = buckets;
        AdvertInterval = advertInterval;
        DeadTime = deadTime;
        SettleTime = settleTime;
        _startedAt = now;
        Held = new BucketSet(buckets);
        _defaultWeights = _advertisedWeights = WeightVector.Default(nodeCount);
    }

    /// <summary>This node's weight (--weight), advertised in its view's weights.</summary>
    public int Weight
    {
        get => _weight;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, Ownership.MinWeight);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, Ownership.MaxWeight);
            _weight = value;
        }
    }

    /// <summary>
    /// While a live peer speaks only advert version 1 (which has no room for weights): every weight
    /// counts as the default, so that peer computes the same tables (docs/design.md#weights).
    /// </summary>
    public bool IgnoreWeights { get; set; }

    /// <summary>Whether any weight this node knows of (its own or one heard) is not the default: only then can <see cref="IgnoreWeights"/> matter.</summary>
    public bool KnowsWeights => _weight != Ownership.DefaultWeight || _weightsHeard;

    /// <summary>The weights of the view this node last advertised.</summary>
    public WeightVector ViewWeights => _advertisedWeights;

    public int Self { get; }

    public int NodeCount { get; }

    public int Buckets { get; }

    public TimeSpan AdvertInterval { get; }

    public TimeSpan DeadTime { get; }

    public TimeSpan SettleTime { get; }

    /// <summary>This node's own state, as it advertises it.</summary>
    public AdvertState LocalState { get; set; } = AdvertState.Active;

    /// <summary>What this node's kernel accepts for new flows.</summary>
    public BucketSet Held { get; private set; }

    /// <summary>The active-node bitmap of the view this node last advertised.</summary>
    public ulong AdvertisedMask => _advertisedMask == ulong.MaxValue ? 0 : _advertisedMask;

    /// <summary>Peers heard from, with what they said last.</summary>
    public IReadOnlyDictionary<int, PeerState> Peers => _peers;

    /// <summary>Whether a peer is alive now (heard within the dead time and not leaving).</summary>
    public bool IsAlive(int nodeId) => _alive.Contains(nodeId);

    /// <summary>Takes the events raised since the last call (peers, view, buckets), each to be logged exactly once with its cause.</summary>
    public IReadOnlyList<BalancerEvent> TakeEvents()
    {
        var events = _events.ToArray();
        _events.Clear();
        return events;
    }

    /// <summary>The ownership table of the current view.</summary>
    public OwnershipTable CurrentTable => Table(AdvertisedMask, _advertisedWeights);

    /// <summary>The table of the advertised view without node <paramref name="id"/>: who owns what once it has drained.</summary>
    public OwnershipTable TableWithout(int id) => Table(AdvertisedMask & ~Bit(id), _advertisedWeights);

    /// <summary>
    /// After a stall longer than the lease, a link without carrier, or a peer's cover of this
    /// node: hold nothing and listen for one dead time before claiming again, exactly as after a
    /// start (peers may have taken over).
    /// </summary>
    public void Restart(TimeSpan now, ReleaseCause cause, int declaredBy = 0)
    {
        if (Held.Count > 0)
        {
            _events.Add(new ReleasedAll(Held.Count, cause, declaredBy));
        }
        Held = new BucketSet(Buckets);
        _startedAt = now;
        _lastPlanKey = null;
    }

    /// <summary>
    /// This node's loop did not run for <paramref name="notListening"/> (a stall: SIGSTOP, a
    /// paused VM, a starved CPU). A peer's silence counts only while this node could have heard
    /// it: adverts that arrived meanwhile wait in the socket and are read next, so a live peer is
    /// heard anyway, and a peer that sent nothing was stalled too (one VM pause stops every
    /// daemon on it at once) or died, and is then declared dead one dead time of listening after
    /// its last advert, late by the stall. Without this, whichever daemon wakes first from a
    /// machine-wide pause declares every other dead before they could send a word. Peers already
    /// dead stay dead.
    /// </summary>
    public void DiscountSilence(TimeSpan notListening, TimeSpan now)
    {
        if (notListening <= TimeSpan.Zero)
        {
            return;
        }
        foreach (var id in _alive)
        {
            var peer = _peers[id];
            var lastHeard = peer.LastHeard + notListening;
            _peers[id] = peer with { LastHeard = lastHeard < now ? lastHeard : now };
        }
    }

    /// <summary>Records an advert that the verifier accepted (authentic, fresh, same configuration).</summary>
    public void OnAdvert(in Advert advert, TimeSpan now)
    {
        var id = advert.NodeId;
        _peers.TryGetValue(id, out var previous);
        var settled = (advert.Flags & AdvertFlags.Settled) != 0;
        var weights = WeightsOf(advert, previous);
        _weightsHeard |= weights is not null;
        _heardWeights[id] = weights?.Of(id) ?? Ownership.DefaultWeight;
        _peers[id] = new PeerState(advert.State, advert.ActiveView, advert.AliveView, now, advert.HeldCount, settled, advert.Incarnation, weights);
        if (previous is not null && DeclaresSelfDead(previous, advert) && Held.Count > 0)
        {
            // The peer missed this node's adverts for its dead time (loss on the way) and took
            // its buckets: both would answer the same clients until the peer hears this node
            // again. Release now, within one delivery of the peer's claim, and rejoin as a newcomer.
            Restart(now, ReleaseCause.DeclaredDead, id);
        }
        if (previous is not null && previous.State != advert.State && _alive.Contains(id))
        {
            _events.Add(new PeerStateChanged(id, previous.State, advert.State));
        }
    }

    /// <summary>The weights of an advert's view, the previous object when unchanged (no allocation per advert for the cache key).</summary>
    private WeightVector? WeightsOf(in Advert advert, PeerState? previous)
    {
        if (advert.Weights is not { } values || values.Length != NodeCount)
        {
            return null;
        }
        if (previous?.Weights is { } known && known.Values.SequenceEqual(values))
        {
            return known;
        }
        var vector = new WeightVector(values);
        return vector.IsDefault ? null : vector;
    }

    /// <summary>
    /// The weights of this node's view: its own; a peer's as that peer last advertised it (kept
    /// after its death, so its block stays where it was and exactly its buckets return to it);
    /// for a node never heard in this process the largest weight a live peer's view gives it, else
    /// the default. Every node thus converges on the same weights for the same nodes.
    /// </summary>
    private WeightVector CurrentWeights()
    {
        if (IgnoreWeights || (_weight == Ownership.DefaultWeight && _heardWeights.Count == 0))
        {
            return _defaultWeights;
        }
        Span<ushort> weights = stackalloc ushort[NodeCount];
        for (var id = 1; id <= NodeCount; id++)
        {
            int weight;
            if (id == Self)
            {
                weight = _weight;
            }
            else if (!_heardWeights.TryGetValue(id, out weight))
            {
                weight = 0;
                foreach (var peer in _alive)
                {
                    weight = Math.Max(weight, _peers[peer].Weights?.Of(id) ?? Ownership.DefaultWeight);
                }
                weight = weight == 0 ? Ownership.DefaultWeight : weight;
            }
            weights[id - 1] = (ushort)weight;
        }
        if (_advertisedWeights.Values.SequenceEqual(weights))
        {
            return _advertisedWeights;
        }
        var vector = new WeightVector(weights);
        return vector.IsDefault ? _defaultWeights : vector;
    }

    /// <summary>
    /// Whether <paramref name="advert"/> says its sender now holds buckets under a view it formed
    /// after declaring this node dead, where its previous advert (same process) still listed this
    /// node alive. A restarted peer (new incarnation) or one that just rejoined (holding nothing)
    /// lists nobody at first and means nothing by it.
    /// </summary>
    private bool DeclaresSelfDead(PeerState previous, in Advert advert) =>
        previous.Incarnation == advert.Incarnation
        && (previous.AliveView & Bit(Self)) != 0
        && (advert.AliveView & Bit(Self)) == 0
        && (advert.ActiveView & Bit(Self)) == 0
        && advert.State == AdvertState.Active
        && advert.HeldCount > 0;

    /// <summary>One step: ages peers, recomputes the view, releases and claims buckets.</summary>
    public MembershipStep Step(TimeSpan now)
    {
        UpdateLiveness(now);
        var mask = LocalState == AdvertState.Active ? Bit(Self) : 0UL;
        var livePeers = new List<PeerView>();
        foreach (var id in _alive)
        {
            var peer = _peers[id];
            if (peer.State == AdvertState.Active)
            {
                mask |= Bit(id);
            }
            livePeers.Add(new PeerView(id, Table(peer.ActiveView & AllNodesMask, peer.Weights ?? _defaultWeights)));
        }
        var weights = CurrentWeights();
        var maskChanged = mask != _advertisedMask;
        var viewChanged = maskChanged || !weights.Equals(_advertisedWeights);
        // Claim only under a view advertised at least SettleTime ago, and not before having
        // listened for one dead time after start (HandoverPlanner remarks, both gates), except
        // for a cover: see IsCover.
        var settled = viewChanged ? IsCover(mask, weights, livePeers, now) : now - _advertisedAt >= SettleTime;
        var claimsAllowed = settled && now - _startedAt >= DeadTime;
        var target = Table(mask, weights);
        // The plan is a pure function of these inputs: when none changed and nothing is pending,
        // the last plan stands (saves a pass over every bucket on each tick).
        var planKey = PlanKey(mask, weights, livePeers, claimsAllowed);
        HandoverPlan plan;
        if (_lastPlan is { Pending: 0 } last && planKey == _lastPlanKey)
        {
            plan = last;
        }
        else
        {
            plan = HandoverPlanner.Plan(Self, Held, target, livePeers, claimsAllowed);
            _lastPlan = plan;
            _lastPlanKey = planKey;
        }
        var heldChanged = !ReferenceEquals(plan.Held, Held) && !plan.Held.Equals(Held);
        Held = plan.Held;
        if (viewChanged)
        {
            if (_advertisedMask != ulong.MaxValue && maskChanged)
            {
                _events.Add(new ViewChanged(NodesOf(_advertisedMask), NodesOf(mask)));
            }
            _advertisedMask = mask;
            _advertisedWeights = weights;
            _advertisedAt = now;
        }
        if (heldChanged)
        {
            _events.Add(new BucketsChanged(Held.Count, Buckets, plan.Claimed, plan.Released, plan.Pending));
        }
        var advertiseNow = viewChanged || heldChanged || _sentAt == TimeSpan.MinValue || now - _sentAt >= AdvertInterval;
        return new MembershipStep(Held, heldChanged, viewChanged, advertiseNow, plan, target);
    }

    /// <summary>
    /// The earliest time at which <see cref="Step"/> can decide differently with no new advert: a
    /// live peer's dead time running out, the next periodic advert, or a claim gate opening while
    /// buckets wait for it. The daemon sleeps until then unless an advert comes first.
    /// </summary>
    public TimeSpan NextDeadline(TimeSpan now)
    {
        var next = _sentAt == TimeSpan.MinValue ? now : _sentAt + AdvertInterval;
        foreach (var id in _alive)
        {
            // Alive while now - LastHeard <= DeadTime: dead one tick later.
            var expiry = _peers[id].LastHeard + DeadTime + TimeSpan.FromTicks(1);
            next = expiry < next ? expiry : next;
        }
        if (_lastPlan is not { Pending: 0 })
        {
            foreach (var gate in (ReadOnlySpan<TimeSpan>)[_advertisedAt + SettleTime, _startedAt + DeadTime])
            {
                next = gate > now && gate < next ? gate : next;
            }
        }
        return next;
    }

    /// <summary>The advert to send now; call after <see cref="Step"/> when it says so.</summary>
    public Advert BuildAdvert(uint clusterId, UInt128 configDigest, ulong incarnation, ulong sequence, TimeSpan now, bool settled)
    {
        _sentAt = now;
        var alive = Bit(Self);
        foreach (var id in _alive)
        {
            alive |= Bit(id);
        }
        return new Advert(clusterId, (ushort)Self, (ushort)NodeCount, LocalState, incarnation, sequence, configDigest,
            alive, AdvertisedMask, (uint)Held.Count, settled ? AdvertFlags.Settled : AdvertFlags.None,
            _advertisedWeights.IsDefault ? null : _advertisedWeights.Values.ToArray());
    }

    /// <summary>
    /// Whether a view change is a cover that may claim at once, without the settle gate: it only
    /// removes nodes (dead, unhealthy, draining or leaving), the view it replaces was advertised at
    /// least SettleTime ago, and every live peer's latest advert carries the old view or the new
    /// one. Why that is safe: removing nodes moves only their buckets (Ownership), so two nodes
    /// that remove different nodes at once never gain the same bucket, and a peer that announced
    /// the same removal computes the same table. A peer whose own view change is still in flight
    /// (say a join it saw first) claims only SettleTime after announcing it; this node's new view
    /// goes out in this very step and reaches that peer within one delivery delay D of its
    /// announcement, before its claim, as long as SettleTime ≥ 2·D. Every other change waits.
    /// This is what makes a dead node covered one dead time after its last advert, not one dead
    /// time plus the settle time.
    /// </summary>
    private bool IsCover(ulong mask, WeightVector weights, List<PeerView> livePeers, TimeSpan now)
    {
        var previous = _advertisedMask;
        // A weight change moves buckets between live nodes: never a cover.
        if (previous == ulong.MaxValue || (mask & ~previous) != 0 || now - _advertisedAt < SettleTime || !weights.Equals(_advertisedWeights))
        {
            return false;
        }
        foreach (var peer in livePeers)
        {
            var view = _peers[peer.NodeId].ActiveView & AllNodesMask;
            if ((view != previous && view != mask) || !peer.Table.Weights.Equals(weights))
            {
                return false;
            }
        }
        return true;
    }

    private string PlanKey(ulong mask, WeightVector weights, List<PeerView> livePeers, bool claimsAllowed)
    {
        var key = new System.Text.StringBuilder();
        key.Append(mask).Append('/').Append(weights.Key).Append('/').Append(claimsAllowed).Append('/').Append(Held.Count);
        foreach (var peer in livePeers.OrderBy(p => p.NodeId))
        {
            key.Append('/').Append(peer.NodeId).Append(':').Append(peer.Table.ActiveMask).Append(':').Append(peer.Table.Weights.Key);
        }
        return key.ToString();
    }

    private ulong AllNodesMask => NodeCount == 64 ? ulong.MaxValue : (1UL << NodeCount) - 1;

    private void UpdateLiveness(TimeSpan now)
    {
        foreach (var (id, peer) in _peers)
        {
            var alive = now - peer.LastHeard <= DeadTime && peer.State != AdvertState.Leaving;
            if (alive && _alive.Add(id))
            {
                _events.Add(new PeerAlive(id, peer.State));
            }
            else if (!alive && _alive.Remove(id))
            {
                _events.Add(peer.State == AdvertState.Leaving
                    ? new PeerLeft(id)
                    : new PeerDead(id, (now - peer.LastHeard).TotalMilliseconds, DeadTime.TotalMilliseconds));
            }
        }
    }

    private OwnershipTable Table(ulong mask, WeightVector weights)
    {
        if (!_tables.TryGetValue((mask, weights), out var table))
        {
            if (_tables.Count >= TableCacheLimit)
            {
                _tables.Clear();
            }
            _tables[(mask, weights)] = table = Ownership.Compute(MembershipView.FromActiveMask(NodeCount, Buckets, mask, weights));
        }
        return table;
    }

    private static ulong Bit(int id) => 1UL << (id - 1);

    /// <summary>The node ids of an active-node bitmap, ascending (none for the "not yet advertised" mask).</summary>
    internal static int[] NodesOf(ulong mask) =>
        mask == ulong.MaxValue ? [] : [.. Enumerable.Range(1, 64).Where(i => (mask & Bit(i)) != 0)];
}
