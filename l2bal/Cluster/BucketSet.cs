using System.Numerics;

namespace L2Balance.Balancer.Cluster;

/// <summary>A mutable set of bucket numbers 0..Capacity-1, one bit per bucket.</summary>
internal sealed class BucketSet : IEquatable<BucketSet>
{
    private readonly ulong[] _bits;

    /// <summary>Creates an empty set for <paramref name="capacity"/> buckets.</summary>
    public BucketSet(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _bits = new ulong[(capacity + 63) / 64];
    }

    /// <summary>The bucket count B this set ranges over.</summary>
    public int Capacity { get; }

    /// <summary>Number of buckets in the set.</summary>
    public int Count
    {
        get
        {
            int n = 0;
            foreach (ulong w in _bits)
            {
                n += BitOperations.PopCount(w);
            }

            return n;
        }
    }

    public bool Contains(int bucket)
    {
        Check(bucket);
        return (_bits[bucket >> 6] & (1UL << bucket)) != 0;
    }

    public void Add(int bucket)
    {
        Check(bucket);
        _bits[bucket >> 6] |= 1UL << bucket;
    }

    public void Remove(int bucket)
    {
        Check(bucket);
        _bits[bucket >> 6] &= ~(1UL << bucket);
    }

    /// <summary>A copy.</summary>
    public BucketSet Clone()
    {
        var copy = new BucketSet(Capacity);
        _bits.CopyTo(copy._bits, 0);
        return copy;
    }

    /// <summary>True if the two sets share a bucket.</summary>
    public bool Overlaps(BucketSet other)
    {
        ArgumentNullException.ThrowIfNull(other);
        for (int i = 0; i < Math.Min(_bits.Length, other._bits.Length); i++)
        {
            if ((_bits[i] & other._bits[i]) != 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The buckets in ascending order.</summary>
    public IEnumerable<int> Buckets()
    {
        for (int b = 0; b < Capacity; b++)
        {
            if ((_bits[b >> 6] & (1UL << b)) != 0)
            {
                yield return b;
            }
        }
    }

    /// <summary>
    /// Maximal runs of consecutive buckets, ascending, as inclusive ranges: the element list of an
    /// nft interval set (<c>{ 0-333, 335-341 }</c>).
    /// </summary>
    public IReadOnlyList<(int Low, int High)> ToRanges()
    {
        var ranges = new List<(int Low, int High)>();
        int start = -1;
        for (int b = 0; b <= Capacity; b++)
        {
            bool present = b < Capacity && (_bits[b >> 6] & (1UL << b)) != 0;
            if (present && start < 0)
            {
                start = b;
            }
            else if (!present && start >= 0)
            {
                ranges.Add((start, b - 1));
                start = -1;
            }
        }

        return ranges;
    }

    public bool Equals(BucketSet? other) =>
        other is not null && other.Capacity == Capacity && _bits.AsSpan().SequenceEqual(other._bits);

    public override bool Equals(object? obj) => Equals(obj as BucketSet);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (ulong w in _bits)
        {
            hash.Add(w);
        }

        return hash.ToHashCode();
    }

    private void Check(int bucket)
    {
        if ((uint)bucket >= (uint)Capacity)
        {
            throw new ArgumentOutOfRangeException(nameof(bucket), bucket, $"Buckets are 0..{Capacity - 1}.");
        }
    }
}
