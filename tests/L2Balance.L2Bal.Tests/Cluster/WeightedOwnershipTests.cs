using L2Balance.Balancer.Cluster;
using Xunit;

namespace L2Balance.L2Bal.Tests.Cluster;

/// <summary>
/// Weighted ownership (docs/design.md#weights): default blocks trimmed or extended through a pool when
/// all are up, weighted rendezvous for the buckets of nodes that are not; equal weights give the unweighted table.
/// </summary>
public class WeightedOwnershipTests
{
    private const int B = 4096;

    private static ulong All(int n) => n == 64 ? ulong.MaxValue : (1UL << n) - 1;

    private static WeightVector Vector(params int[] weights) => new([.. weights.Select(w => (ushort)w)]);

    private static OwnershipTable Table(ulong active, WeightVector weights, int buckets = B) =>
        Ownership.Compute(MembershipView.FromActiveMask(weights.Count, buckets, active, weights));

    /// <summary>Weights within 1:10: a base of 1..100 and each node at 1 to 10 times it.</summary>
    private static WeightVector RandomWeights(Random random, int n)
    {
        int low = random.Next(1, 101);
        return Vector([.. Enumerable.Range(0, n).Select(_ => random.Next(low, (10 * low) + 1))]);
    }

    private static double Share(OwnershipTable t, WeightVector w, ulong active, int id)
    {
        long total = Enumerable.Range(1, w.Count).Where(i => (active & (1UL << (i - 1))) != 0).Sum(i => (long)w.Of(i));
        return (double)w.Of(id) / total;
    }

    [Fact]
    public void Owners_EqualWeights_AreExactlyTheUnweightedTables()
    {
        var random = new Random(5);
        foreach (int weight in (int[])[1, 37, 100, 1000])
        {
            for (int n = 1; n <= 16; n++)
            {
                var weights = Vector([.. Enumerable.Repeat(weight, n)]);
                var masks = n <= 6 ? Enumerable.Range(0, 1 << n).Select(m => (ulong)m) : Enumerable.Range(0, 40).Select(_ => (ulong)random.NextInt64() & All(n));
                foreach (ulong mask in masks)
                {
                    var unweighted = Ownership.Compute(MembershipView.FromActiveMask(n, B, mask));
                    Assert.True(unweighted.SameAs(Table(mask, weights)), $"n={n} weight={weight} mask={mask:x}");
                }
            }
        }
    }

    /// <summary>Nodes whose weighted share is below their default block: they keep a prefix and release the rest.</summary>
    private static int Trimmed(WeightVector w, int buckets = B)
    {
        long total = w.Values.ToArray().Sum(x => (long)x);
        return Enumerable.Range(1, w.Count).Count(id =>
            (long)buckets * w.Of(id) < (long)Enumerable.Range(0, buckets).Count(b => Ownership.DefaultOwner(b, w.Count, buckets) == id) * total);
    }

    [Fact]
    public void Owners_AllUpWithWeights_AreSizedByWeightInAtMostTwoNMinusOneRanges()
    {
        var random = new Random(11);
        for (int n = 1; n <= 16; n++)
        {
            for (int round = 0; round < 20; round++)
            {
                var w = RandomWeights(random, n);
                var t = Table(All(n), w);
                int trimmed = Trimmed(w);
                int ranges = 0;
                for (int id = 1; id <= n; id++)
                {
                    double ideal = B * Share(t, w, All(n), id);
                    bool isTrimmed = ideal < Enumerable.Range(0, B).Count(b => Ownership.DefaultOwner(b, n, B) == id);
                    // A trimmed node keeps ⌈ideal⌉; the others share the pool, short of it by < 1 per trimmed node.
                    Assert.InRange(t.CountOf(id), ideal - 1 - trimmed, ideal + 1);
                    var own = t.BucketsOf(id);
                    Assert.InRange(own.Count, 1, isTrimmed ? 1 : 1 + trimmed);
                    if (isTrimmed)
                    {
                        Assert.Equal((int)Math.Ceiling((double)(id - 1) * B / n), own[0].Low);
                    }
                    ranges += own.Count;
                }
                Assert.InRange(ranges, n, (2 * n) - 1);
                Assert.Equal(0, t.UnownedCount);
            }
        }
    }

    [Fact]
    public void Owners_FewOrManyBucketsWithWeights_OwnEveryBucketWithinRounding()
    {
        var random = new Random(13);
        foreach (int buckets in (int[])[1, 2, 3, 7, 15, 16, 17, 100, 65_536])
        {
            for (int round = 0; round < 20; round++)
            {
                int n = random.Next(1, 17);
                var w = round == 0 ? Vector([.. Enumerable.Repeat(Ownership.MaxWeight, n - 1), Ownership.MinWeight]) : RandomWeights(random, n);
                var t = Table(All(n), w, buckets);
                Assert.Equal(0, t.UnownedCount);
                long total = w.Values.ToArray().Sum(x => (long)x);
                int trimmed = Trimmed(w, buckets);
                for (int id = 1; id <= n; id++)
                {
                    // Homes may be empty when B < N: such a node fills the pool like any node beyond its block.
                    double ideal = (double)buckets * w.Of(id) / total;
                    Assert.InRange(t.CountOf(id), ideal - 1 - trimmed, ideal + 1);
                }
            }
        }
    }

    [Fact]
    public void Shares_RandomWeightsWithinOneToTen_WithinTwoPointsOfTheWeightedShare()
    {
        var random = new Random(17);
        double worst = 0;
        for (int n = 3; n <= 16; n++)
        {
            for (int round = 0; round < 25; round++)
            {
                var w = RandomWeights(random, n);
                var masks = new List<ulong> { All(n) };
                masks.AddRange(Enumerable.Range(0, n).Select(dead => All(n) & ~(1UL << dead)));
                for (int pair = 0; pair < 10; pair++)
                {
                    int a = random.Next(n), b = (a + 1 + random.Next(n - 1)) % n;
                    masks.Add(All(n) & ~(1UL << a) & ~(1UL << b));
                }
                foreach (ulong mask in masks)
                {
                    var t = Table(mask, w);
                    Assert.Equal(0, t.UnownedCount);
                    for (int id = 1; id <= n; id++)
                    {
                        double expected = (mask & (1UL << (id - 1))) == 0 ? 0 : Share(t, w, mask, id);
                        double error = Math.Abs(((double)t.CountOf(id) / B) - expected);
                        worst = Math.Max(worst, error);
                        Assert.True(error <= 0.02, $"n={n} weights={w} mask={mask:x} node {id}: {t.CountOf(id)} of {B}, expected {expected:P2}");
                    }
                }
            }
        }
        Assert.InRange(worst, 0, 0.02);
    }

    [Fact]
    public void Shares_TenThousandClientAddresses_WithinTwoPointsOfTheWeights()
    {
        var w = Vector(100, 200, 100, 300, 50);
        var random = new Random(23);
        foreach (ulong mask in (ulong[])[0b11111, 0b11101, 0b10110])
        {
            var t = Table(mask, w);
            var served = new int[w.Count + 1];
            var address = new byte[4];
            for (int i = 0; i < 10_000; i++)
            {
                random.NextBytes(address);
                served[t.Owner(BucketHash.Bucket(address, B, 0x5eed))]++;
            }
            Assert.Equal(0, served[0]);
            for (int id = 1; id <= w.Count; id++)
            {
                double expected = (mask & (1UL << (id - 1))) == 0 ? 0 : Share(t, w, mask, id);
                Assert.InRange(served[id] / 10_000.0, expected - 0.02, expected + 0.02);
            }
        }
    }

    [Fact]
    public void Owners_WeightedNodeLostAndBack_MoveExactlyItsBucketsAndBack()
    {
        var random = new Random(29);
        for (int n = 2; n <= 12; n++)
        {
            var w = RandomWeights(random, n);
            var full = Table(All(n), w);
            for (int lost = 1; lost <= n; lost++)
            {
                var degraded = Table(All(n) & ~(1UL << (lost - 1)), w);
                var moves = OwnershipTable.Diff(full, degraded);
                Assert.All(moves, m => Assert.Equal(lost, m.From));
                Assert.Equal(full.CountOf(lost), moves.Sum(m => m.Buckets.Count));
                Assert.Equal(OwnershipTable.Diff(degraded, full).Sum(m => m.Buckets.Count), moves.Sum(m => m.Buckets.Count));
                Assert.All(OwnershipTable.Diff(degraded, full), m => Assert.Equal(lost, m.To));

                // A second loss moves only that node's buckets too, never between two survivors.
                int second = (lost % n) + 1;
                if (second != lost)
                {
                    var twice = Table(All(n) & ~(1UL << (lost - 1)) & ~(1UL << (second - 1)), w);
                    Assert.All(OwnershipTable.Diff(degraded, twice), m => Assert.Equal(second, m.From));
                }
            }
        }
    }

    /// <summary>Buckets moved between the two all-up tables, and those of them that moved between two nodes other than <paramref name="changed"/>.</summary>
    private static (int Moved, int Excess) Movement(OwnershipTable t0, OwnershipTable t1, int changed)
    {
        var moves = OwnershipTable.Diff(t0, t1);
        return (moves.Sum(m => m.Buckets.Count), moves.Where(m => m.From != changed && m.To != changed).Sum(m => m.Buckets.Count));
    }

    /// <summary>The pool: buckets an all-up table gives to another node than their default block's.</summary>
    private static int Pool(OwnershipTable t) => Enumerable.Range(0, t.Buckets).Count(b => t.Owner(b) != Ownership.DefaultOwner(b, t.NodeCount, t.Buckets));

    [Fact]
    public void Owners_OneWeightChangedFromOrToEqual_MoveOnlyToOrFromThatNode()
    {
        var random = new Random(31);
        for (int n = 2; n <= 16; n++)
        {
            for (int round = 0; round < 10; round++)
            {
                int common = random.Next(Ownership.MinWeight, Ownership.MaxWeight + 1), changed = random.Next(1, n + 1);
                var equal = Vector([.. Enumerable.Repeat(common, n)]);
                var other = equal.Values.ToArray();
                other[changed - 1] = (ushort)random.Next(Ownership.MinWeight, Ownership.MaxWeight + 1);
                var t0 = Table(All(n), equal);
                var t1 = Table(All(n), new WeightVector(other));
                var (moved, excess) = Movement(t0, t1, changed);
                Assert.Equal(0, excess);
                // The least a change can move: the changed node's gain or loss.
                Assert.Equal(Math.Abs(t1.CountOf(changed) - t0.CountOf(changed)), moved);
                Assert.Equal(0, Movement(t1, t0, changed).Excess);
            }
        }
    }

    [Fact]
    public void Owners_WeightOfTheOnlyNodeBeyondItsBlockChanged_MoveOnlyToOrFromThatNode()
    {
        var random = new Random(37);
        int cases = 0;
        for (int n = 3; n <= 16; n++)
        {
            for (int round = 0; round < 20; round++)
            {
                // One heavy node among lighter, similar ones: it alone needs more than its default block, before and after.
                int low = random.Next(20, 201), heavy = random.Next(1, n + 1);
                var before = Enumerable.Range(0, n).Select(_ => (ushort)random.Next(low, low + (low / 4) + 1)).ToArray();
                before[heavy - 1] = (ushort)Math.Min(Ownership.MaxWeight, random.Next(2 * low, (4 * low) + 1));
                var after = before.ToArray();
                after[heavy - 1] = (ushort)Math.Min(Ownership.MaxWeight, random.Next(2 * low, (5 * low) + 1));
                var w0 = new WeightVector(before);
                var w1 = new WeightVector(after);
                if (Trimmed(w0) != n - 1 || Trimmed(w1) != n - 1 || w0.Equals(w1))
                {
                    continue;
                }
                cases++;
                var t0 = Table(All(n), w0);
                var t1 = Table(All(n), w1);
                var (moved, excess) = Movement(t0, t1, heavy);
                Assert.Equal(0, excess);
                Assert.Equal(Math.Abs(t1.CountOf(heavy) - t0.CountOf(heavy)), moved);
            }
        }
        Assert.True(cases >= 70, $"{cases} cases");
    }

    [Fact]
    public void Owners_AnyWeightChange_MoveInTheChangesDirectionAndBetweenOthersOnlyThePool()
    {
        var random = new Random(41);
        for (int n = 2; n <= 16; n++)
        {
            for (int round = 0; round < 10; round++)
            {
                var before = RandomWeights(random, n);
                int changed = random.Next(1, n + 1);
                var raised = before.Values.ToArray();
                raised[changed - 1] = (ushort)Math.Min(Ownership.MaxWeight, raised[changed - 1] * 2);
                var after = new WeightVector(raised);
                var t0 = Table(All(n), before);
                var t1 = Table(All(n), after);
                int trimmed = Math.Max(Trimmed(before), Trimmed(after));
                Assert.True(t1.CountOf(changed) >= t0.CountOf(changed));
                for (int id = 1; id <= n; id++)
                {
                    if (id != changed)
                    {
                        // Shares fall; a node's count may rise by the pool's rounding (< 1 per trimmed node, twice).
                        Assert.True(t1.CountOf(id) <= t0.CountOf(id) + 1 + (2 * trimmed), $"n={n} node {id} gained from {before} to {after}");
                    }
                }

                // A bucket that passes between two unchanged nodes was in the pool before or after (docs/design.md#weights).
                var (_, excess) = Movement(t0, t1, changed);
                Assert.InRange(excess, 0, Pool(t0) + Pool(t1));
            }
        }
    }

    [Fact]
    public void Owners_SameWeightedView_SameTableOnEveryCall()
    {
        var w = Vector(100, 250, 40, 1000, 7);
        for (ulong mask = 0; mask < 32; mask++)
        {
            Assert.True(Table(mask, w).SameAs(Table(mask, Vector(100, 250, 40, 1000, 7))));
        }
    }

    [Fact]
    public void NegLog2_KnownValues_AreExactAndMonotone()
    {
        Assert.Equal(64UL << 32, Ownership.NegLog2(0) + 0); // x|1 = 1: log2 1 = 0
        Assert.Equal(1UL << 32, Ownership.NegLog2(1UL << 63)); // u = 1/2
        Assert.Equal(2UL << 32, Ownership.NegLog2(1UL << 62)); // u = 1/4
        Assert.InRange(Ownership.NegLog2(ulong.MaxValue), 1UL, 2UL);
        var random = new Random(3);
        for (int i = 0; i < 10_000; i++)
        {
            ulong a = (ulong)random.NextInt64(), b = a + (ulong)random.Next(1, 1 << 20);
            Assert.True(Ownership.NegLog2(b) <= Ownership.NegLog2(a));
            double exact = -Math.Log2((a | 1) / Math.Pow(2, 64));
            Assert.InRange(Ownership.NegLog2(a) / Math.Pow(2, 32), exact - 1e-6, exact + 1e-6);
        }
    }

    [Fact]
    public void WeightVector_OutOfRange_IsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Vector(100, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Vector(1001));
        Assert.Throws<ArgumentException>(() => MembershipView.FromActiveMask(3, B, 0b111, Vector(100, 100)));
        Assert.True(Vector(100, 100).IsDefault);
        Assert.Equal(Vector(5, 6), Vector(5, 6));
        Assert.NotEqual(Vector(5, 6), Vector(6, 5));
    }
}
