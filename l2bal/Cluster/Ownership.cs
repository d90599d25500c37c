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
/// </remarks>
internal static class Ownership
{
    /// <summary>Computes the table for <paramref name="view"/>.</summary>
    public static OwnershipTable Compute(MembershipView view)
    {
        ArgumentNullException.ThrowIfNull(view);
        int n = view.NodeCount;
        ulong active = view.ActiveMask;
        var owners = new ushort[view.Buckets];
        if (active == 0)
        {
            return new OwnershipTable(n, owners, active);
        }

        for (int b = 0; b < owners.Length; b++)
        {
            int defaultOwner = DefaultOwner(b, n, owners.Length);
            owners[b] = (ushort)((active & (1UL << (defaultOwner - 1))) != 0 ? defaultOwner : RendezvousWinner(b, active, n));
        }

        return new OwnershipTable(n, owners, active);
    }

    /// <summary>The owner of bucket <paramref name="bucket"/> when every node is active: ⌊b·N/B⌋+1.</summary>
    public static int DefaultOwner(int bucket, int nodeCount, int buckets) => (int)((long)bucket * nodeCount / buckets) + 1;

    /// <summary>Rendezvous weight of (bucket, node); fixed forever, as every node must agree on it.</summary>
    public static ulong Weight(int bucket, int nodeId) => SplitMix64.Mix(((ulong)(uint)bucket << 16) | (uint)nodeId);

    private static int RendezvousWinner(int bucket, ulong active, int n)
    {
        int best = 0;
        ulong bestWeight = 0;
        for (int id = 1; id <= n; id++)
        {
            if ((active & (1UL << (id - 1))) == 0)
            {
                continue;
            }

            ulong w = Weight(bucket, id);
            // Strictly greater: on an (astronomically unlikely) tie the lowest id wins, on every node alike.
            if (best == 0 || w > bestWeight)
            {
                best = id;
                bestWeight = w;
            }
        }

        return best;
    }
}

/// <summary>One group of buckets that changes owner between two tables (0 = nobody).</summary>
internal sealed record BucketMove(int From, int To, IReadOnlyList<int> Buckets);

/// <summary>Bucket → owning node id (0 = nobody), as computed by <see cref="Ownership.Compute"/>.</summary>
internal sealed class OwnershipTable
{
    private readonly ushort[] _owners;

    internal OwnershipTable(int nodeCount, ushort[] owners, ulong activeMask)
    {
        NodeCount = nodeCount;
        _owners = owners;
        ActiveMask = activeMask;
    }

    /// <summary>Node count N.</summary>
    public int NodeCount { get; }

    /// <summary>Bucket count B.</summary>
    public int Buckets => _owners.Length;

    /// <summary>The active set the table was computed from.</summary>
    public ulong ActiveMask { get; }

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
