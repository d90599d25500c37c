namespace L2Balance.Balancer.Cluster;

/// <summary>
/// The ownership function: membership view → which node owns each bucket. Pure, so every node
/// that holds the same view computes the same table without a coordinator (docs/design.md#ownership).
/// </summary>
/// <remarks>
/// Rule: bucket b's default owner is node ⌊b·N/B⌋+1: N contiguous blocks of B/N buckets (±1),
/// which balances exactly when all are up, as (b mod N)+1 would. Contiguous blocks because
/// they are a handful of ranges in the kernel's interval sets instead of B/N single elements,
/// and libnftables 1.0.6 reloads every set element on each transaction (docs/benchmarks.md#l2bal-idle-cpu).
/// If the default owner is not active, b goes to the active node with the highest rendezvous
/// weight splitmix64(b &lt;&lt; 16 | id) (Thaler and Ravishankar, "Using name-based mappings to
/// increase hit rates", 1998). Properties this gives, tested in OwnershipTests:
/// only a lost node's buckets move, spread evenly over the survivors; when it returns exactly
/// those move back; adding or removing an active node never moves a bucket between two other nodes.
/// Weights (docs/design.md#weights): the blocks are the default ones trimmed or extended by weight
/// (<see cref="Layout"/>: a weight change moves buckets only to or from the changed node when the
/// weights were or become equal, or when it is the only node beyond its block; otherwise a bounded
/// excess), and the rendezvous is weighted (least −ln(u)/w), so a node's share is its weight over the
/// active total; with equal weights both reduce exactly to the rule above.
/// WeightedOwnershipTests checks it.
/// </remarks>
internal static class Ownership
{
    /// <summary>A node's weight unless configured (--weight): equal weights give the unweighted table exactly.</summary>
    public const int DefaultWeight = 100;

    /// <summary>Lightest weight a node may have.</summary>
    public const int MinWeight = 1;

    /// <summary>Heaviest weight a node may have.</summary>
    public const int MaxWeight = 1000;

    /// <summary>Computes the table for <paramref name="view"/>.</summary>
    public static OwnershipTable Compute(MembershipView view)
    {
        ArgumentNullException.ThrowIfNull(view);
        int n = view.NodeCount;
        ulong active = view.ActiveMask;
        var weights = view.Weights;
        var owners = new ushort[view.Buckets];
        if (active == 0)
        {
            return new OwnershipTable(n, owners, active, weights);
        }

        bool equalActive = EqualAmongActive(weights, active, n);
        var layout = Layout(n, owners.Length, weights);
        for (int b = 0; b < owners.Length; b++)
        {
            int owner = layout[b];
            owners[b] = (ushort)((active & (1UL << (owner - 1))) != 0 ? owner : RendezvousWinner(b, active, n, weights, equalActive));
        }

        return new OwnershipTable(n, owners, active, weights);
    }

    /// <summary>
    /// Who owns each bucket when all N nodes are up (docs/design.md#weights): a function of the weights
    /// only, so a node's death or return moves nothing else. Node k's home block is its equal-weight block
    /// ⌊b·N/B⌋+1; a node whose share B·w/W is below its home keeps the home's first ⌈B·w/W⌉ buckets and
    /// releases the tail; the tails, each read from its block's end, in id order, form one pool that the
    /// nodes above their home fill in id order, each in proportion to its deficit. Equal weights: the homes.
    /// </summary>
    internal static ushort[] Layout(int n, int buckets, WeightVector weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var layout = new ushort[buckets];
        long total = 0;
        for (int id = 1; id <= n; id++)
        {
            total += weights.Of(id);
        }

        // Home of node k: [⌈(k-1)·B/N⌉, ⌈k·B/N⌉), the blocks of the unweighted table.
        var start = new int[n + 1];
        for (int k = 0; k <= n; k++)
        {
            start[k] = (int)((((long)k * buckets) + n - 1) / n);
        }

        var keep = new int[n];
        var deficit = new long[n]; // B·w − home·W: the share beyond the home, in units of 1/W bucket
        long pool = 0, deficits = 0;
        for (int k = 0; k < n; k++)
        {
            int home = start[k + 1] - start[k];
            long share = (long)buckets * weights.Of(k + 1);
            // Rounded up, so a node whose weight falls keeps no more and one whose weight rises releases no less.
            keep[k] = (int)Math.Min(home, (share + total - 1) / total);
            deficit[k] = Math.Max(0, share - ((long)home * total));
            pool += home - keep[k];
            deficits += deficit[k];
            layout.AsSpan(start[k], keep[k]).Fill((ushort)(k + 1));
        }

        if (pool == 0)
        {
            return layout;
        }

        // Pool position p → bucket: tails in id order, each from its block's end backwards.
        int tail = 0, taken = 0;
        long filled = 0, cumulative = 0;
        for (int k = 0; k < n; k++)
        {
            if (deficit[k] == 0)
            {
                continue;
            }

            cumulative += deficit[k];
            long upTo = (long)((Int128)pool * cumulative / deficits);
            for (; filled < upTo; filled++)
            {
                while (taken == start[tail + 1] - start[tail] - keep[tail])
                {
                    tail++;
                    taken = 0;
                }

                layout[start[tail + 1] - 1 - taken++] = (ushort)(k + 1);
            }
        }

        return layout;
    }

    /// <summary>The owner of bucket <paramref name="bucket"/> when every node is active and weights are equal: ⌊b·N/B⌋+1.</summary>
    public static int DefaultOwner(int bucket, int nodeCount, int buckets) => (int)((long)bucket * nodeCount / buckets) + 1;

    /// <summary>Rendezvous weight of (bucket, node); fixed forever, as every node must agree on it.</summary>
    public static ulong Weight(int bucket, int nodeId) => SplitMix64.Mix(((ulong)(uint)bucket << 16) | (uint)nodeId);

    /// <summary>
    /// −log2(u)·2³², u = the rendezvous weight as a fraction of 2⁶⁴: integer arithmetic only, so
    /// every node computes the same bits (a libm log may differ by an ulp between machines).
    /// </summary>
    internal static ulong NegLog2(ulong x)
    {
        ulong v = x | 1;
        int k = 63 - System.Numerics.BitOperations.LeadingZeroCount(v);
        ulong fraction = 0;
        // Mantissa in [1, 2) as 1.63 fixed point; each squaring yields one bit of log2 (Knuth, TAOCP 1.2.2, ex. 25).
        ulong m = v << (63 - k);
        for (int bit = 31; bit >= 0; bit--)
        {
            UInt128 square = (UInt128)m * m;
            if ((square >> 127) != 0)
            {
                fraction |= 1UL << bit;
                m = (ulong)(square >> 64);
            }
            else
            {
                m = (ulong)(square >> 63);
            }
        }

        return (64UL << 32) - (((ulong)k << 32) | fraction);
    }

    private static bool EqualAmongActive(WeightVector weights, ulong active, int n)
    {
        int first = 0;
        for (int id = 1; id <= n; id++)
        {
            if ((active & (1UL << (id - 1))) == 0)
            {
                continue;
            }

            int w = weights.Of(id);
            if (first != 0 && w != first)
            {
                return false;
            }

            first = w;
        }

        return true;
    }

    /// <summary>
    /// Weighted rendezvous (Schindelhauer and Schomaker, "Weighted distributed hash tables", 2005):
    /// the least −ln(u)/w wins, which node i does with probability wᵢ/Σw. Equal weights: the highest u, as before weights.
    /// </summary>
    private static int RendezvousWinner(int bucket, ulong active, int n, WeightVector weights, bool equal)
    {
        int best = 0;
        ulong bestWeight = 0, bestScore = 0;
        for (int id = 1; id <= n; id++)
        {
            if ((active & (1UL << (id - 1))) == 0)
            {
                continue;
            }

            ulong u = Weight(bucket, id);
            bool better;
            if (best == 0)
            {
                better = true;
            }
            else if (equal)
            {
                // Strictly greater: on an (astronomically unlikely) tie the lowest id wins, on every node alike.
                better = u > bestWeight;
            }
            else
            {
                // score/w compared crosswise: ≤ 2³⁸·1000, no overflow.
                ulong score = NegLog2(u);
                ulong mine = score * (ulong)weights.Of(best), theirs = bestScore * (ulong)weights.Of(id);
                better = mine < theirs || (mine == theirs && u > bestWeight);
            }

            if (better)
            {
                best = id;
                bestWeight = u;
                bestScore = equal ? 0 : NegLog2(u);
            }
        }

        return best;
    }
}

/// <summary>
/// Each node's weight (index id-1) as one view has it; immutable, compared by value, so it can key
/// the table cache and stand for "the weights of the view" in adverts.
/// </summary>
internal sealed class WeightVector : IEquatable<WeightVector>
{
    private static readonly Dictionary<int, WeightVector> Defaults = [];
    private readonly ushort[] _weights;
    private readonly int _hash;

    /// <summary>A vector of <paramref name="weights"/>, each within <see cref="Ownership.MinWeight"/>..<see cref="Ownership.MaxWeight"/>.</summary>
    public WeightVector(ReadOnlySpan<ushort> weights)
    {
        if (weights.Length is < 1 or > MembershipView.MaxNodes)
        {
            throw new ArgumentOutOfRangeException(nameof(weights), weights.Length, $"A cluster has 1..{MembershipView.MaxNodes} nodes.");
        }

        var hash = new HashCode();
        IsDefault = true;
        foreach (var w in weights)
        {
            if (w is < Ownership.MinWeight or > Ownership.MaxWeight)
            {
                throw new ArgumentOutOfRangeException(nameof(weights), w, $"A weight is {Ownership.MinWeight}..{Ownership.MaxWeight}.");
            }

            IsDefault &= w == Ownership.DefaultWeight;
            hash.Add(w);
        }

        _weights = weights.ToArray();
        _hash = hash.ToHashCode();
        Key = IsDefault ? "" : string.Join(',', _weights);
    }

    /// <summary>Every one of <paramref name="nodeCount"/> nodes at <see cref="Ownership.DefaultWeight"/>.</summary>
    public static WeightVector Default(int nodeCount)
    {
        lock (Defaults)
        {
            if (!Defaults.TryGetValue(nodeCount, out var vector))
            {
                var weights = new ushort[nodeCount];
                weights.AsSpan().Fill(Ownership.DefaultWeight);
                Defaults[nodeCount] = vector = new WeightVector(weights);
            }

            return vector;
        }
    }

    /// <summary>Node count.</summary>
    public int Count => _weights.Length;

    /// <summary>Every weight is the default: the table is the unweighted one, and adverts carry no weights.</summary>
    public bool IsDefault { get; }

    /// <summary>The weights joined by commas, "" when default: part of the plan cache key.</summary>
    public string Key { get; }

    /// <summary>The weights, index id-1.</summary>
    public ReadOnlySpan<ushort> Values => _weights;

    /// <summary>Weight of node <paramref name="nodeId"/> (1..N).</summary>
    public int Of(int nodeId) => _weights[nodeId - 1];

    public bool Equals(WeightVector? other) =>
        other is not null && (ReferenceEquals(this, other) || (other._hash == _hash && other._weights.AsSpan().SequenceEqual(_weights)));

    public override bool Equals(object? obj) => Equals(obj as WeightVector);

    public override int GetHashCode() => _hash;

    public override string ToString() => string.Join(',', _weights);
}

/// <summary>One group of buckets that changes owner between two tables (0 = nobody).</summary>
internal sealed record BucketMove(int From, int To, IReadOnlyList<int> Buckets);

/// <summary>Bucket → owning node id (0 = nobody), as computed by <see cref="Ownership.Compute"/>.</summary>
internal sealed class OwnershipTable
{
    private readonly ushort[] _owners;

    internal OwnershipTable(int nodeCount, ushort[] owners, ulong activeMask, WeightVector weights)
    {
        NodeCount = nodeCount;
        _owners = owners;
        ActiveMask = activeMask;
        Weights = weights;
    }

    /// <summary>Node count N.</summary>
    public int NodeCount { get; }

    /// <summary>Bucket count B.</summary>
    public int Buckets => _owners.Length;

    /// <summary>The active set the table was computed from.</summary>
    public ulong ActiveMask { get; }

    /// <summary>The weights the table was computed from.</summary>
    public WeightVector Weights { get; }

    /// <summary>Owner of <paramref name="bucket"/>, 0 if nobody.</summary>
    public int Owner(int bucket)
    {
        if ((uint)bucket >= (uint)_owners.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(bucket), bucket, $"Buckets are 0..{_owners.Length - 1}.");
        }

        return _owners[bucket];
    }

    /// <summary>The buckets of <paramref name="nodeId"/> as a set.</summary>
    public BucketSet SetOf(int nodeId)
    {
        var set = new BucketSet(_owners.Length);
        for (int b = 0; b < _owners.Length; b++)
        {
            if (_owners[b] == nodeId)
            {
                set.Add(b);
            }
        }

        return set;
    }

    /// <summary>The buckets of <paramref name="nodeId"/> as inclusive ranges, for an nft interval set.</summary>
    public IReadOnlyList<(int Low, int High)> BucketsOf(int nodeId) => SetOf(nodeId).ToRanges();

    /// <summary>How many buckets <paramref name="nodeId"/> owns (0 gives the unowned count).</summary>
    public int CountOf(int nodeId)
    {
        int count = 0;
        foreach (ushort owner in _owners)
        {
            if (owner == nodeId)
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>Buckets owned by nobody.</summary>
    public int UnownedCount => CountOf(0);

    /// <summary>True if both tables assign every bucket identically.</summary>
    public bool SameAs(OwnershipTable other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return other.NodeCount == NodeCount && _owners.AsSpan().SequenceEqual(other._owners);
    }

    /// <summary>The buckets whose owner differs, grouped by (from, to), ordered by from then to.</summary>
    public static IReadOnlyList<BucketMove> Diff(OwnershipTable before, OwnershipTable after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        if (before.Buckets != after.Buckets)
        {
            throw new ArgumentException("Tables over different bucket counts cannot be compared.", nameof(after));
        }

        var groups = new SortedDictionary<(int From, int To), List<int>>();
        for (int b = 0; b < before.Buckets; b++)
        {
            int from = before._owners[b], to = after._owners[b];
            if (from == to)
            {
                continue;
            }

            if (!groups.TryGetValue((from, to), out var list))
            {
                groups[(from, to)] = list = [];
            }

            list.Add(b);
        }

        return [.. groups.Select(g => new BucketMove(g.Key.From, g.Key.To, g.Value))];
    }
}
