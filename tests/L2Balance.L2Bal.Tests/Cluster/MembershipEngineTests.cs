using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Cluster;

/// <summary>
/// Several engines exchanging adverts in memory with a 1 ms delivery delay and 10 ms ticks:
/// start-up, loss of a node, its return, unhealthy and draining nodes. At every tick no bucket is
/// held by two nodes; once settled each node holds exactly its share of the table.
/// </summary>
public class MembershipEngineTests
{
    private const int Buckets = 512;
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan Dead = Interval * 3;

    [Fact]
    public void StartUp_AllNodes_SettleOnExactShares()
    {
        var cluster = new Cluster(3);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111);
    }

    [Fact]
    public void StartUp_BeforeTheDeadTime_ClaimsNothing()
    {
        var cluster = new Cluster(3);
        cluster.Run(Dead - TimeSpan.FromMilliseconds(20));
        Assert.All(cluster.Nodes, n => Assert.Equal(0, n.Engine.Held.Count));
    }

    [Fact]
    public void LostNode_CoveredThenBack_ReturnsByHandshake()
    {
        var cluster = new Cluster(3);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.Crash(3);
        cluster.Run(TimeSpan.FromMilliseconds(400));
        cluster.AssertHolds(0b011);
        Assert.Contains(cluster.Nodes[0].Events, e => e is PeerDead { Peer: 3 });
        cluster.Restart(3);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111);
    }

    [Fact]
    public void UnhealthyOrDrainingNode_ReleasesEverything_GetsItBackAfter()
    {
        var cluster = new Cluster(3);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.Nodes[1].Engine.LocalState = AdvertState.Unhealthy;
        cluster.Nodes[2].Engine.LocalState = AdvertState.Draining;
        cluster.Run(TimeSpan.FromMilliseconds(300));
        cluster.AssertHolds(0b001);
        Assert.Equal(Buckets, cluster.Nodes[0].Engine.Held.Count);
        cluster.Nodes[1].Engine.LocalState = AdvertState.Active;
        cluster.Nodes[2].Engine.LocalState = AdvertState.Active;
        cluster.Run(TimeSpan.FromMilliseconds(300));
        cluster.AssertHolds(0b111);
    }

    [Fact]
    public void Stall_OfOneNode_HoldsNothingAndListensBeforeClaiming()
    {
        var cluster = new Cluster(2);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        var node = cluster.Nodes[0];
        Assert.True(node.Engine.Held.Count > 0);
        cluster.StallRestart(1);
        Assert.Equal(0, node.Engine.Held.Count);
        cluster.Run(Dead - TimeSpan.FromMilliseconds(30));
        Assert.Equal(0, node.Engine.Held.Count);
        cluster.Run(TimeSpan.FromMilliseconds(400));
        cluster.AssertHolds(0b11);
    }

    /// <summary>
    /// One pause stops every node at once (a paused VM, where all of them run): for a second no
    /// node steps or sends. Each wakes having missed its lease and listens again (the daemon's
    /// stall rule), and discounts the pause from its peers' silence. Then nobody declares anybody
    /// dead, and every node gets its own buckets back. Without the discount the first to wake
    /// declares the others dead before they could send a word: the control case.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Pause_OfEveryNodeAtOnce_DeclaresNobodyDead(bool discount)
    {
        var cluster = new Cluster(3, eventDriven: true);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111);
        var marks = cluster.Nodes.Select(n => n.Events.Count).ToArray();
        cluster.PauseAll(TimeSpan.FromSeconds(1), discount);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111);
        var deaths = cluster.Nodes.SelectMany((n, i) => n.Events.Skip(marks[i])).Count(e => e is PeerDead or PeerLeft);
        if (discount)
        {
            Assert.Equal(0, deaths);
        }
        else
        {
            Assert.True(deaths > 0, "the control case should see false deaths");
        }
    }

    [Fact]
    public void PauseDiscount_DeadPeer_IsNeitherRevivedNorSpared()
    {
        var cluster = new Cluster(3, eventDriven: true);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.Crash(3);
        cluster.Run(TimeSpan.FromMilliseconds(400));
        Assert.False(cluster.Nodes[0].Engine.IsAlive(3));
        // Node 2 dies and node 1 pauses for a second: node 3 stays dead, node 2 is declared dead
        // one dead time of listening after the pause, and node 1 ends holding everything.
        cluster.Crash(2);
        cluster.PauseAll(TimeSpan.FromSeconds(1), discount: true);
        cluster.Run(Dead - TimeSpan.FromMilliseconds(60));
        Assert.False(cluster.Nodes[0].Engine.IsAlive(3));
        Assert.True(cluster.Nodes[0].Engine.IsAlive(2));
        cluster.Run(TimeSpan.FromMilliseconds(600));
        Assert.False(cluster.Nodes[0].Engine.IsAlive(2));
        cluster.AssertHolds(0b001);
    }

    [Fact]
    public void LeavingNode_ForItsPeers_IsDeadAtOnce()
    {
        var cluster = new Cluster(2);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.Nodes[1].Engine.LocalState = AdvertState.Leaving;
        cluster.Run(TimeSpan.FromMilliseconds(20));
        Assert.False(cluster.Nodes[0].Engine.IsAlive(2));
    }

    /// <summary>
    /// The daemon steps only when an advert arrives, its state changes, or <see cref="MembershipEngine.NextDeadline"/>
    /// passes. Stepped that way (1 ms resolution), the engines settle, cover and hand back exactly
    /// as with fixed ticks, and a dead peer is declared within a millisecond of its dead time.
    /// </summary>
    [Fact]
    public void Step_OnlyAtDeadlinesAndAdverts_CoversAtTheDeadTimeAndHandsBack()
    {
        var cluster = new Cluster(3, eventDriven: true);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111);
        var lastHeard = cluster.Nodes[0].Engine.Peers[3].LastHeard;
        cluster.Crash(3);
        cluster.Run(TimeSpan.FromMilliseconds(400));
        cluster.AssertHolds(0b011);
        var death = cluster.Nodes[0].DeathSeen[3];
        Assert.InRange(death - lastHeard, Dead, Dead + TimeSpan.FromMilliseconds(1));
        // A cover claims in the step that sees the death, without waiting for the settle time.
        Assert.Equal(death, cluster.Nodes[0].HeldChangedAt);
        cluster.Restart(3);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111);
        // Idle: at most one step per own advert (20 a second) and per peer advert (2 × 20), nothing
        // in between (fixed 10 ms ticks would be 100).
        var before = cluster.Nodes[0].Steps;
        cluster.Run(TimeSpan.FromSeconds(1));
        Assert.InRange(cluster.Nodes[0].Steps - before, 20, 60);
    }

    /// <summary>
    /// One-way loss: node 1 stops hearing node 2 (node 2 still hears node 1), declares it dead and
    /// covers its buckets. Node 2 learns it from node 1's next advert and releases at once, so no
    /// bucket has two holders for longer than that advert takes to arrive; once node 1 hears node 2 again
    /// node 2 rejoins and gets its buckets back by the handshake. (Both hold node 2's buckets for
    /// the one delivery delay between node 1's claim and node 2's hearing of it, 1 ms here.)
    /// </summary>
    [Fact]
    public void NodeDeclaredDead_ByAPeerThatTookItsBuckets_ReleasesThem()
    {
        var cluster = new Cluster(2, eventDriven: true);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b11);
        cluster.OverlapTolerance = TimeSpan.FromMilliseconds(1);
        cluster.Drop = (from, to) => from == 2 && to == 1;
        cluster.Run(TimeSpan.FromMilliseconds(300));
        // Node 1's claim and node 2's release are one delivery (1 ms) apart, no more.
        Assert.Equal(TimeSpan.FromMilliseconds(1), cluster.LongestOverlap);
        Assert.Equal(Buckets, cluster.Nodes[0].Engine.Held.Count);
        Assert.Equal(0, cluster.Nodes[1].Engine.Held.Count);
        Assert.Contains(cluster.Nodes[1].Events, e => e is ReleasedAll { Cause: ReleaseCause.DeclaredDead, DeclaredBy: 1 });
        cluster.Drop = null;
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b11);
    }

    /// <summary>
    /// The settle gate is skipped only for a cover that everybody agrees on: when a live peer's
    /// latest advert carries a third view, losing a node waits the settle time before claiming.
    /// </summary>
    [Fact]
    public void Cover_PeerAdvertisesAnotherView_WaitsForTheSettleTime()
    {
        var t = TimeSpan.FromSeconds(10);
        var engine = new MembershipEngine(1, 4, Buckets, Interval, Dead, Interval / 2, t);
        // Peers 2 and 3 active, all agreeing on {1,2,3}; node 4 never started.
        void Hear(int id, ulong view) => engine.OnAdvert(new Advert(10, (ushort)id, 4, AdvertState.Active, 1, 1, 0, 0b1111, view, 0, AdvertFlags.None), t);
        for (var i = 0; i < 10; i++, t += Interval)
        {
            Hear(2, 0b0111);
            Hear(3, 0b0111);
            engine.Step(t);
        }
        var share = engine.Held.Count;
        // Peer 2 now says {1,2,3,4} (it saw node 4 join, this node has not), and node 3 dies.
        Hear(2, 0b1111);
        t += Dead + TimeSpan.FromMilliseconds(1);
        Hear(2, 0b1111);
        var step = engine.Step(t);
        Assert.False(engine.IsAlive(3));
        Assert.Equal(share, step.Held.Count);
        step = engine.Step(t + Interval / 2);
        Assert.True(step.Held.Count > share);
    }

    /// <summary>
    /// Crashes, restarts and health flaps at random. Event-driven runs deliver each advert after
    /// 1 to 5 ms at random (reordering them), the most the cover rule allows with a 25 ms settle
    /// time (MembershipEngine.IsCover: SettleTime ≥ 2 × delivery delay).
    /// </summary>
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Membership_RandomFaults_NeverGiveABucketTwoHolders(bool eventDriven, bool weights)
    {
        // With weights: restarts with a random weight and weight changes of live nodes as well.
        int[] choices = [50, 100, 200, 300];
        for (var seed = 0; seed < (eventDriven ? 60 : 20) / (weights ? 2 : 1); seed++)
        {
            var random = new Random(seed);
            var cluster = new Cluster(4, eventDriven, eventDriven ? new Random(seed + 1000) : null);
            for (var round = 0; round < 30; round++)
            {
                var node = cluster.Nodes[random.Next(4)];
                switch (random.Next(4))
                {
                    case 0 when node.Running:
                        cluster.Crash(node.Id);
                        break;
                    case 0:
                        cluster.Restart(node.Id, weights ? choices[random.Next(choices.Length)] : Ownership.DefaultWeight);
                        break;
                    case 1:
                        node.Engine.LocalState = node.Engine.LocalState == AdvertState.Active ? AdvertState.Unhealthy : AdvertState.Active;
                        break;
                    case 2 when weights:
                        node.Engine.Weight = choices[random.Next(choices.Length)];
                        break;
                    default:
                        break;
                }
                cluster.Run(TimeSpan.FromMilliseconds(random.Next(10, 200)));
            }
            foreach (var node in cluster.Nodes)
            {
                if (!node.Running)
                {
                    cluster.Restart(node.Id, node.Engine.Weight);
                }
                node.Engine.LocalState = AdvertState.Active;
            }
            cluster.Run(TimeSpan.FromMilliseconds(800));
            cluster.AssertHolds(0b1111, [.. cluster.Nodes.Select(n => n.Engine.Weight)]);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WeightChange_OfALiveNode_MovesByHandBackWithNoTwoHolders(bool eventDriven)
    {
        var cluster = new Cluster(3, eventDriven, eventDriven ? new Random(7) : null);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111);
        cluster.Nodes[1].Engine.Weight = 200;
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111, 100, 200, 100);
        Assert.All(cluster.Nodes, n => Assert.Equal("100,200,100", n.Engine.ViewWeights.ToString()));
        cluster.Nodes[1].Engine.Weight = 100;
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111);
    }

    [Fact]
    public void Weights_NodeStartedAfterAHeavyPeerDied_TakesItsWeightFromPeers()
    {
        var cluster = new Cluster(3);
        cluster.Nodes[2].Engine.Weight = 300;
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111, 100, 100, 300);
        cluster.Crash(3);
        cluster.Run(TimeSpan.FromMilliseconds(400));
        cluster.AssertHolds(0b011, 100, 100, 300);
        // Node 1 restarts and never hears node 3: node 2's view tells it node 3's weight.
        cluster.Restart(1);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b011, 100, 100, 300);
        cluster.Restart(3, 300);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111, 100, 100, 300);
    }

    private sealed class Node(int id, int count, TimeSpan now)
    {
        public int Id { get; } = id;

        public MembershipEngine Engine { get; private set; } = Create(id, count, now);

        public bool Running { get; set; } = true;

        public ulong Sequence { get; set; }

        public List<BalancerEvent> Events { get; } = [];

        /// <summary>When this node first saw each peer dead.</summary>
        public Dictionary<int, TimeSpan> DeathSeen { get; } = [];

        /// <summary>Event-driven mode: when the engine next needs a step, and the state it last stepped with.</summary>
        public TimeSpan Due { get; set; }

        public AdvertState SteppedState { get; set; } = AdvertState.Active;

        public int Steps { get; set; }

        public TimeSpan HeldChangedAt { get; set; }

        public void Reset(TimeSpan at, int weight = Ownership.DefaultWeight)
        {
            Engine = Create(Id, count, at);
            Engine.Weight = weight;
            Running = true;
            Sequence = 0;
            Due = at;
        }

        private static MembershipEngine Create(int id, int count, TimeSpan now) =>
            new(id, count, Buckets, Interval, Dead, Interval / 2, now);
    }

    /// <summary>
    /// Fixed mode: every node steps every 10 ms. Event-driven mode (the daemon's loop): time moves
    /// in 1 ms steps and a node steps only when an advert reaches it, its state was changed, or
    /// its engine's NextDeadline has passed.
    /// </summary>
    private sealed class Cluster
    {
        private readonly TimeSpan _tick;
        private readonly bool _eventDriven;
        private readonly List<(TimeSpan At, int To, Advert Advert)> _wire = [];
        private TimeSpan _now = TimeSpan.FromSeconds(1);

        private readonly Random? _jitter;

        /// <summary>Adverts from → to that are lost, or null for none.</summary>
        public Func<int, int, bool>? Drop { get; set; }

        public Cluster(int count, bool eventDriven = false, Random? jitter = null)
        {
            _eventDriven = eventDriven;
            _jitter = jitter;
            _tick = TimeSpan.FromMilliseconds(eventDriven ? 1 : 10);
            Nodes = [.. Enumerable.Range(1, count).Select(i => new Node(i, count, _now) { Due = _now })];
        }

        public Node[] Nodes { get; }

        public void Crash(int id) => Nodes[id - 1].Running = false;

        public void Restart(int id, int weight = Ownership.DefaultWeight) => Nodes[id - 1].Reset(_now, weight);

        public void StallRestart(int id) => Nodes[id - 1].Engine.Restart(_now, ReleaseCause.Stall);

        /// <summary>
        /// Every running node stops for <paramref name="duration"/>, then does what the daemon does
        /// on waking after more than its lease (two intervals): listens again, and with
        /// <paramref name="discount"/> takes the pause off its peers' silence.
        /// </summary>
        public void PauseAll(TimeSpan duration, bool discount)
        {
            _now += duration;
            foreach (var node in Nodes.Where(n => n.Running))
            {
                if (discount)
                {
                    node.Engine.DiscountSilence(duration, _now);
                }
                node.Engine.Restart(_now, ReleaseCause.Stall);
                node.Due = _now;
            }
        }

        public void Run(TimeSpan duration)
        {
            for (var end = _now + duration; _now < end; _now += _tick)
            {
                var reached = new HashSet<int>();
                foreach (var (_, to, advert) in _wire.Where(m => m.At <= _now).ToList())
                {
                    if (Nodes[to - 1].Running)
                    {
                        Nodes[to - 1].Engine.OnAdvert(advert, _now);
                        reached.Add(to);
                    }
                }
                _wire.RemoveAll(m => m.At <= _now);
                foreach (var node in Nodes.Where(n => n.Running))
                {
                    if (_eventDriven && !reached.Contains(node.Id) && _now < node.Due && node.Engine.LocalState == node.SteppedState)
                    {
                        continue;
                    }
                    var step = node.Engine.Step(_now);
                    node.Steps++;
                    node.HeldChangedAt = step.HeldChanged ? _now : node.HeldChangedAt;
                    node.SteppedState = node.Engine.LocalState;
                    var events = node.Engine.TakeEvents();
                    node.Events.AddRange(events);
                    foreach (var e in events)
                    {
                        var dead = e switch { PeerDead d => d.Peer, PeerLeft l => l.Peer, _ => 0 };
                        if (dead != 0)
                        {
                            node.DeathSeen.TryAdd(dead, _now);
                        }
                    }
                    if (step.AdvertiseNow)
                    {
                        var advert = node.Engine.BuildAdvert(10, 0, (ulong)node.Id, ++node.Sequence, _now, step.Plan.Settled);
                        foreach (var peer in Nodes.Where(p => p.Id != node.Id && Drop?.Invoke(node.Id, p.Id) != true))
                        {
                            _wire.Add((_now + TimeSpan.FromMilliseconds(_jitter?.Next(1, 6) ?? 1), peer.Id, advert));
                        }
                    }
                    node.Due = node.Engine.NextDeadline(_now);
                    AssertDisjoint();
                }
            }
        }

        public void AssertHolds(ulong activeMask, params int[] weights)
        {
            var vector = weights.Length == 0 ? null : new WeightVector([.. weights.Select(w => (ushort)w)]);
            var table = Ownership.Compute(MembershipView.FromActiveMask(Nodes.Length, Buckets, activeMask, vector));
            foreach (var node in Nodes.Where(n => n.Running))
            {
                Assert.Equal(table.SetOf(node.Id), node.Engine.Held);
            }
        }

        /// <summary>
        /// How long two nodes may both hold a bucket: zero, except in tests of a false death
        /// under loss, where the wrongly covered node can release only once it hears the cover.
        /// </summary>
        public TimeSpan OverlapTolerance { get; set; }

        /// <summary>The longest stretch during which two nodes held a bucket.</summary>
        public TimeSpan LongestOverlap { get; private set; }

        private TimeSpan? _overlapSince;

        private void AssertDisjoint()
        {
            var running = Nodes.Where(n => n.Running).ToArray();
            var overlap = false;
            for (var i = 0; i < running.Length; i++)
            {
                for (var j = i + 1; j < running.Length; j++)
                {
                    if (running[i].Engine.Held.Overlaps(running[j].Engine.Held))
                    {
                        overlap = true;
                        _overlapSince ??= _now;
                        Assert.False(_now - _overlapSince > OverlapTolerance,
                            $"t={_now.TotalMilliseconds} ms: nodes {running[i].Id} and {running[j].Id} both hold a bucket");
                    }
                }
            }
            if (!overlap && _overlapSince is { } since)
            {
                // Ended now: it lasted from its first sight until this step.
                LongestOverlap = _now - since > LongestOverlap ? _now - since : LongestOverlap;
                _overlapSince = null;
            }
        }
    }
}
