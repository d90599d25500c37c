namespace L2Balance.Balancer.Cluster;

/// <summary>What one node believes about another.</summary>
internal enum NodeStatus
{
    /// <summary>No valid advertisement for DeadAfterMisses intervals (or never heard).</summary>
    Dead = 0,

    /// <summary>Alive and healthy: may own buckets.</summary>
    Active,

    /// <summary>Alive, local service failing its probes: keeps established flows, owns nothing.</summary>
    Unhealthy,

    /// <summary>Alive, operator drain: keeps established flows, owns nothing.</summary>
    Draining,
}

/// <summary>
/// The input of the ownership function: node count N (ids 1..N), bucket count B, each node's status
/// and each node's weight (<see cref="Weights"/>, all <see cref="Ownership.DefaultWeight"/> unless given).
/// Only the set of <see cref="NodeStatus.Active"/> nodes matters for ownership, so it is also
/// carried as a bitmap (<see cref="ActiveMask"/>, bit id-1), which is what adverts exchange.
/// </summary>
internal sealed class MembershipView
{
    /// <summary>Largest supported cluster: one bit per node in a 64-bit advert bitmap.</summary>
    public const int MaxNodes = 64;

    private readonly NodeStatus[] _status;

    /// <summary>Creates a view; <paramref name="status"/>[i] is the status of node i+1.</summary>
    public MembershipView(int buckets, IReadOnlyList<NodeStatus> status, WeightVector? weights = null)
    {
        ArgumentNullException.ThrowIfNull(status);
        ArgumentOutOfRangeException.ThrowIfLessThan(buckets, 1);
        if (status.Count is < 1 or > MaxNodes)
        {
            throw new ArgumentOutOfRangeException(nameof(status), status.Count, $"A cluster has 1..{MaxNodes} nodes.");
        }

        if (weights is not null && weights.Count != status.Count)
        {
            throw new ArgumentException($"{weights.Count} weights for {status.Count} nodes.", nameof(weights));
        }

        Buckets = buckets;
        Weights = weights ?? WeightVector.Default(status.Count);
        _status = [.. status];
        for (int i = 0; i < _status.Length; i++)
        {
            if (_status[i] == NodeStatus.Active)
            {
                ActiveMask |= 1UL << i;
            }
        }
    }

    /// <summary>Bucket count B.</summary>
    public int Buckets { get; }

    /// <summary>Node count N.</summary>
    public int NodeCount => _status.Length;

    /// <summary>Each node's weight (docs/design.md#weights).</summary>
    public WeightVector Weights { get; }

    /// <summary>Bit (id-1) set for every active node.</summary>
    public ulong ActiveMask { get; }

    /// <summary>Status of node <paramref name="nodeId"/> (1..N).</summary>
    public NodeStatus StatusOf(int nodeId)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeId, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nodeId, NodeCount);
        return _status[nodeId - 1];
    }

    /// <summary>A view in which exactly the nodes of <paramref name="activeMask"/> are active, the rest dead.</summary>
    public static MembershipView FromActiveMask(int nodeCount, int buckets, ulong activeMask, WeightVector? weights = null)
    {
        if (nodeCount is < 1 or > MaxNodes)
        {
            throw new ArgumentOutOfRangeException(nameof(nodeCount), nodeCount, $"A cluster has 1..{MaxNodes} nodes.");
        }

        if (nodeCount < MaxNodes && (activeMask >> nodeCount) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(activeMask), "Active bits beyond the node count.");
        }

        var status = new NodeStatus[nodeCount];
        for (int i = 0; i < nodeCount; i++)
        {
            status[i] = (activeMask & (1UL << i)) != 0 ? NodeStatus.Active : NodeStatus.Dead;
        }

        return new MembershipView(buckets, status, weights);
    }

    /// <summary>All N nodes active.</summary>
    public static MembershipView AllActive(int nodeCount, int buckets, WeightVector? weights = null) =>
        FromActiveMask(nodeCount, buckets, nodeCount == MaxNodes ? ulong.MaxValue : (1UL << nodeCount) - 1, weights);
}
