using L2Balance.Balancer.Cluster;
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
    public void Start_up_settles_on_exact_shares()
    {
        var cluster = new Cluster(3);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111);
    }

    [Fact]
    public void A_node_that_just_started_claims_nothing_before_listening_for_the_dead_time()
    {
        var cluster = new Cluster(3);
        cluster.Run(Dead - TimeSpan.FromMilliseconds(20));
        Assert.All(cluster.Nodes, n => Assert.Equal(0, n.Engine.Held.Count));
    }

    [Fact]
    public void Lost_node_is_covered_and_returns_by_handshake()
    {
        var cluster = new Cluster(3);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.Crash(3);
        cluster.Run(TimeSpan.FromMilliseconds(400));
        cluster.AssertHolds(0b011);
        Assert.Contains(cluster.Nodes[0].Events, e => e.Change.StartsWith("peer 3 is dead", StringComparison.Ordinal));
        cluster.Restart(3);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.AssertHolds(0b111);
    }

    [Fact]
    public void Unhealthy_and_draining_nodes_release_everything_and_get_it_back()
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
    public void After_a_stall_a_node_holds_nothing_and_listens_before_claiming_again()
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

    [Fact]
    public void A_leaving_node_is_dead_at_once_for_its_peers()
    {
        var cluster = new Cluster(2);
        cluster.Run(TimeSpan.FromMilliseconds(600));
        cluster.Nodes[1].Engine.LocalState = AdvertState.Leaving;
        cluster.Run(TimeSpan.FromMilliseconds(20));
        Assert.False(cluster.Nodes[0].Engine.IsAlive(2));
    }

    [Fact]
    public void Random_faults_never_give_a_bucket_two_holders()
    {
        for (var seed = 0; seed < 20; seed++)
        {
            var random = new Random(seed);
            var cluster = new Cluster(4);
            for (var round = 0; round < 30; round++)
            {
                var node = cluster.Nodes[random.Next(4)];
                switch (random.Next(4))
                {
                    case 0 when node.Running:
                        cluster.Crash(node.Id);
                        break;
                    case 0:
                        cluster.Restart(node.Id);
                        break;
                    case 1:
                        node.Engine.LocalState = node.Engine.LocalState == AdvertState.Active ? AdvertState.Unhealthy : AdvertState.Active;
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
                    cluster.Restart(node.Id);
                }
                node.Engine.LocalState = AdvertState.Active;
            }
            cluster.Run(TimeSpan.FromMilliseconds(800));
            cluster.AssertHolds(0b1111);
        }
    }

    private sealed class Node(int id, int count, TimeSpan now)
    {
        public int Id { get; } = id;

        public MembershipEngine Engine { get; private set; } = Create(id, count, now);

        public bool Running { get; set; } = true;

        public ulong Sequence { get; set; }

        public List<MembershipEvent> Events { get; } = [];

        public void Reset(TimeSpan at)
        {
            Engine = Create(Id, count, at);
            Running = true;
            Sequence = 0;
        }

        private static MembershipEngine Create(int id, int count, TimeSpan now) =>
            new(id, count, Buckets, Interval, Dead, Interval / 2, now);
    }

    private sealed class Cluster
    {
        private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(10);
        private readonly List<(TimeSpan At, int To, Advert Advert)> _wire = [];
        private TimeSpan _now = TimeSpan.FromSeconds(1);

        public Cluster(int count)
        {
            Nodes = [.. Enumerable.Range(1, count).Select(i => new Node(i, count, _now))];
        }

        public Node[] Nodes { get; }

        public void Crash(int id) => Nodes[id - 1].Running = false;

        public void Restart(int id) => Nodes[id - 1].Reset(_now);

        public void StallRestart(int id) => Nodes[id - 1].Engine.Restart(_now);

        public void Run(TimeSpan duration)
        {
            for (var end = _now + duration; _now < end; _now += Tick)
            {
                foreach (var (_, to, advert) in _wire.Where(m => m.At <= _now).ToList())
                {
                    if (Nodes[to - 1].Running)
                    {
                        Nodes[to - 1].Engine.OnAdvert(advert, _now);
                    }
                }
                _wire.RemoveAll(m => m.At <= _now);
                foreach (var node in Nodes.Where(n => n.Running))
                {
                    var step = node.Engine.Step(_now);
                    node.Events.AddRange(node.Engine.TakeEvents());
                    if (step.AdvertiseNow)
                    {
                        var advert = node.Engine.BuildAdvert(10, 0, (ulong)node.Id, ++node.Sequence, _now, step.Plan.Settled);
                        foreach (var peer in Nodes.Where(p => p.Id != node.Id))
                        {
                            _wire.Add((_now + TimeSpan.FromMilliseconds(1), peer.Id, advert));
                        }
                    }
                    AssertDisjoint();
                }
            }
        }

        public void AssertHolds(ulong activeMask)
        {
            var table = Ownership.Compute(MembershipView.FromActiveMask(Nodes.Length, Buckets, activeMask));
            foreach (var node in Nodes.Where(n => n.Running))
            {
                Assert.Equal(table.SetOf(node.Id), node.Engine.Held);
            }
        }

        private void AssertDisjoint()
        {
            var running = Nodes.Where(n => n.Running).ToArray();
            for (var i = 0; i < running.Length; i++)
            {
                for (var j = i + 1; j < running.Length; j++)
                {
                    Assert.False(running[i].Engine.Held.Overlaps(running[j].Engine.Held),
                        $"t={_now.TotalMilliseconds} ms: nodes {running[i].Id} and {running[j].Id} both hold a bucket");
                }
            }
        }
    }
}
