using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Cluster;

/// <summary>
/// Nodes exchanging real, HMAC-signed adverts over a network with random delays (so adverts of
/// different senders are reordered, and older ones of one sender overtaken), while nodes crash,
/// restart and flip health at random. At every step: no bucket held by two nodes.
/// After the faults stop: one view, and every bucket held by exactly its target owner.
/// </summary>
public class HandoverSimulationTests
{
    [Theory]
    [InlineData(3, 0.1)]
    [InlineData(4, 0.1)]
    [InlineData(5, 0.1)]
    [InlineData(5, 0.3)] // faults closer together than the delivery delay
    public void Handover_RandomSchedules_StayDisjointAndConverge(int nodes, double faultProbability)
    {
        long claims = 0;
        for (int seed = 0; seed < 40; seed++)
        {
            var sim = new Simulation(nodes, seed, settle: Simulation.MaxDelay);
            sim.Run(ticks: 600, eventProbability: faultProbability);
            Assert.Null(sim.FirstOverlap);
            sim.Run(ticks: 60, eventProbability: 0);
            Assert.Null(sim.FirstOverlap);
            sim.AssertConverged();
            claims += sim.Claims;
        }

        Assert.True(claims > 10_000, $"only {claims} claims: the simulation does not exercise hand-over");
    }

    [Fact]
    public void Handover_WithoutTheSettleTime_LetsTwoNodesClaimOneBucket()
    {
        // Ablation: proves the gate in HandoverPlanner's remarks is needed, not decorative.
        bool collided = false;
        for (int seed = 0; seed < 200 && !collided; seed++)
        {
            var sim = new Simulation(5, seed, settle: 0);
            sim.Run(ticks: 600, eventProbability: 0.2);
            collided = sim.FirstOverlap is not null;
        }

        Assert.True(collided);
    }

    private sealed class Simulation
    {
        public const int Interval = 2;      // ticks between periodic adverts
        public const int MaxDelay = 3;      // one-way delay is 1..MaxDelay ticks
        public const int DeadAfter = 6;     // 3 missed intervals; > Interval + MaxDelay, so no false "dead"
        private const int Buckets = 256;
        private const uint ClusterId = 10;
        private static readonly byte[] Key = [.. Enumerable.Range(100, 32).Select(i => (byte)i)];
        private static readonly UInt128 Digest = 0x1234;

        private readonly Random _rng;
        private readonly int _settle;
        private readonly int _startupListen;
        private readonly Node[] _nodes;
        private readonly List<(int At, int To, byte[] Bytes)> _wire = [];
        private readonly Dictionary<ulong, OwnershipTable> _tables = [];
        private int _now;

        public Simulation(int n, int seed, int settle, int startupListen = DeadAfter)
        {
            _rng = new Random(seed);
            _settle = settle;
            _startupListen = startupListen;
            _nodes = [.. Enumerable.Range(1, n).Select(id => new Node(id))];
            foreach (var node in _nodes)
            {
                node.Start(_now, Buckets);
            }
        }

        public string? FirstOverlap { get; private set; }

        public long Claims { get; private set; }

        public void Run(int ticks, double eventProbability)
        {
            for (int end = _now + ticks; _now < end; _now++)
            {
                if (_rng.NextDouble() < eventProbability)
                {
                    Fault(_nodes[_rng.Next(_nodes.Length)]);
                }

                Deliver();
                foreach (var node in _nodes.OrderBy(_ => _rng.Next()))
                {
                    if (node.Running)
                    {
                        Step(node);
                        CheckDisjoint();
                    }
                }
            }
        }

        public void AssertConverged()
        {
            ulong truth = 0;
            foreach (var node in _nodes.Where(n => n.Running && n.Healthy))
            {
                truth |= 1UL << (node.Id - 1);
            }

            var target = Table(truth);
            foreach (var node in _nodes.Where(n => n.Running))
            {
                Assert.Equal(truth, node.AdvertisedMask);
                Assert.Equal(target.SetOf(node.Id), node.Held);
            }

            Assert.Equal(truth == 0 ? Buckets : 0, target.UnownedCount);
        }

        private void Fault(Node node)
        {
            if (!node.Running)
            {
                node.Start(_now, Buckets);
            }
            else if (_rng.Next(3) == 0)
            {
                node.Crash(); // its kernel tables die with it
            }
            else
            {
                node.Healthy = !node.Healthy;
            }
        }

        private void Deliver()
        {
            foreach (var (_, to, bytes) in _wire.Where(m => m.At == _now).OrderBy(_ => _rng.Next()).ToList())
            {
                var node = _nodes[to - 1];
                if (!node.Running)
                {
                    continue;
                }

                if (node.Verifier!.TryAccept(bytes, out var advert, out var reason))
                {
                    node.Peers[advert.NodeId] = (advert.State, advert.ActiveView, _now);
                }
                else
                {
                    Assert.Equal(AdvertRejection.Replayed, reason); // overtaken by a newer one
                }
            }

            _wire.RemoveAll(m => m.At <= _now);
        }

        private void Step(Node node)
        {
            var live = node.Peers.Where(p => _now - p.Value.Heard <= DeadAfter && p.Value.State != AdvertState.Leaving).ToList();
            ulong mask = node.Healthy ? 1UL << (node.Id - 1) : 0;
            foreach (var (id, (state, _, _)) in live)
            {
                mask |= state == AdvertState.Active ? 1UL << (id - 1) : 0;
            }

            bool changed = mask != node.AdvertisedMask;
            bool claimsAllowed = !changed && _now - node.AdvertisedAt >= _settle && _now - node.StartedAt >= _startupListen;
            var plan = HandoverPlanner.Plan(node.Id, node.Held, Table(mask), [.. live.Select(p => new PeerView(p.Key, Table(p.Value.View)))], claimsAllowed);
            node.Held = plan.Held;
            Claims += plan.Claimed;
            if (changed)
            {
                node.AdvertisedMask = mask;
                node.AdvertisedAt = _now;
            }

            if (changed || _now - node.SentAt >= Interval)
            {
                Send(node, plan);
            }
        }

        private void Send(Node node, HandoverPlan plan)
        {
            node.SentAt = _now;
            var advert = new Advert(
                ClusterId, (ushort)node.Id, (ushort)_nodes.Length, node.Healthy ? AdvertState.Active : AdvertState.Unhealthy,
                node.Incarnation, ++node.Sequence, Digest, node.AdvertisedMask, node.AdvertisedMask,
                (uint)plan.Held.Count, plan.Settled ? AdvertFlags.Settled : AdvertFlags.None);
            var bytes = new byte[AdvertCodec.Length];
            AdvertCodec.Write(advert, Key, bytes);
            foreach (var peer in _nodes.Where(p => p.Id != node.Id))
            {
                _wire.Add((_now + _rng.Next(1, MaxDelay + 1), peer.Id, bytes));
            }
        }

        private void CheckDisjoint()
        {
            var running = _nodes.Where(n => n.Running).ToList();
            for (int i = 0; i < running.Count && FirstOverlap is null; i++)
            {
                for (int j = i + 1; j < running.Count; j++)
                {
                    if (running[i].Held.Overlaps(running[j].Held))
                    {
                        FirstOverlap = $"t={_now}: nodes {running[i].Id} and {running[j].Id} both hold a bucket";
                        break;
                    }
                }
            }
        }

        private OwnershipTable Table(ulong mask)
        {
            if (!_tables.TryGetValue(mask, out var table))
            {
                _tables[mask] = table = Ownership.Compute(MembershipView.FromActiveMask(_nodes.Length, Buckets, mask));
            }

            return table;
        }

        private sealed class Node(int id)
        {
            private static ulong s_incarnations;

            public int Id { get; } = id;
            public bool Running { get; private set; }
            public bool Healthy { get; set; }
            public ulong Incarnation { get; private set; }
            public ulong Sequence { get; set; }
            public BucketSet Held { get; set; } = new(1);
            public int StartedAt { get; private set; }
            public ulong AdvertisedMask { get; set; }
            public int AdvertisedAt { get; set; }
            public int SentAt { get; set; }
            public AdvertVerifier? Verifier { get; private set; }
            public Dictionary<int, (AdvertState State, ulong View, int Heard)> Peers { get; } = [];

            public void Start(int now, int buckets)
            {
                Running = true;
                Healthy = true;
                Incarnation = Interlocked.Increment(ref s_incarnations) + (ulong)now * 1_000_000; // grows like a clock
                Sequence = 0;
                Held = new BucketSet(buckets);
                StartedAt = now;
                AdvertisedMask = ulong.MaxValue; // nothing advertised yet
                SentAt = int.MinValue / 2;
                Peers.Clear();
                Verifier?.Dispose();
                Verifier = new AdvertVerifier(Key, ClusterId, Id, Digest);
            }

            public void Crash()
            {
                Running = false;
                Held = new BucketSet(Held.Capacity);
            }
        }
    }
}
