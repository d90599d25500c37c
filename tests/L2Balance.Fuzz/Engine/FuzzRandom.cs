using L2Balance.Balancer.Cluster;

namespace L2Balance.Fuzz.Engine;

/// <summary>
/// A small deterministic generator with no allocation: the n-th value is splitmix64 of the start
/// plus n, so an input is reproduced from its run seed, its target and its index alone.
/// </summary>
public struct FuzzRandom(ulong start)
{
    private ulong _next = start;

    /// <summary>The start for input <paramref name="index"/> of <paramref name="target"/> in run <paramref name="seed"/>.</summary>
    public static ulong StartOf(ulong seed, string target, long index)
    {
        ulong name = 1469598103934665603UL; // FNV-1a: a stable hash of the name (string.GetHashCode changes per process)
        foreach (char c in target)
        {
            name = (name ^ c) * 1099511628211UL;
        }

        return SplitMix64.Mix(SplitMix64.Mix(seed ^ name) + (ulong)index);
    }

    public ulong NextUInt64() => SplitMix64.Mix(_next++);

    /// <summary>0 ≤ value &lt; <paramref name="bound"/> (bound ≥ 1); the modulo bias is irrelevant here.</summary>
    public int Next(int bound) => (int)(NextUInt64() % (ulong)bound);

    public int Next(int low, int highExclusive) => low + Next(highExclusive - low);

    public bool Percent(int percent) => Next(100) < percent;

    public byte NextByte() => (byte)NextUInt64();

    public T Pick<T>(IReadOnlyList<T> items) => items[Next(items.Count)];
}
