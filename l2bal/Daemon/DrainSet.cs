using L2Balance.Balancer.Cluster;

namespace L2Balance.Balancer.Daemon;

/// <summary>
/// Buckets this node released but still carries established flows in: the kernel keeps passing
/// their packets (the early drop spares them) until conntrack shows no flow of this node left in
/// them. Pure: the daemon reads conntrack off the loop and hands the result in.
/// </summary>
internal sealed class DrainSet
{
    private readonly BucketSet _buckets;
    private readonly TimeSpan[] _since;

    public DrainSet(int buckets)
    {
        _buckets = new BucketSet(buckets);
        _since = new TimeSpan[buckets];
    }

    /// <summary>How many buckets drain.</summary>
    public int Count => _buckets.Count;

    public bool Contains(int bucket) => _buckets.Contains(bucket);

    /// <summary>
    /// Follows a change of the held set: buckets released now start draining, buckets held again
    /// stop. Returns whether the draining set changed.
    /// </summary>
    public bool Follow(BucketSet before, BucketSet held, TimeSpan now)
    {
        if (held.Equals(before))
        {
            return false;
        }
        var changed = false;
        foreach (var bucket in before.Buckets())
        {
            if (!held.Contains(bucket))
            {
                _buckets.Add(bucket);
                _since[bucket] = now;
                changed = true;
            }
        }
        foreach (var bucket in held.Buckets())
        {
            if (_buckets.Contains(bucket))
            {
                _buckets.Remove(bucket);
                changed = true;
            }
        }
        return changed;
    }

    /// <summary>
    /// Stops draining the buckets in which conntrack held no established flow of this node when it
    /// was read (<paramref name="readStartedAt"/>). Only buckets that were already draining when
    /// the read began: one released later may have taken a new flow the read did not see.
    /// Returns how many stopped.
    /// </summary>
    public int Prune(TimeSpan readStartedAt, IReadOnlyDictionary<int, int> flowsByBucket)
    {
        var finished = _buckets.Buckets().Where(b => _since[b] < readStartedAt && !flowsByBucket.ContainsKey(b)).ToList();
        foreach (var bucket in finished)
        {
            _buckets.Remove(bucket);
        }
        return finished.Count;
    }

    /// <summary>What the kernel must accept packets of established flows for: the held buckets and the draining ones.</summary>
    public BucketSet AcceptedWith(BucketSet held)
    {
        var accepted = held.Clone();
        foreach (var bucket in _buckets.Buckets())
        {
            accepted.Add(bucket);
        }
        return accepted;
    }
}
