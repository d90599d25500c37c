namespace L2Balance.Balancer.Cluster;

/// <summary>
/// The splitmix64 finalizer (Steele, Lea, Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014; constants as in java.util.SplittableRandom): a fixed, well-mixed
/// 64-bit bijection. Used wherever every node must derive the same pseudo-random value from
/// the same input (rendezvous weights, cluster MAC derivation), so it must never change.
/// </summary>
internal static class SplitMix64
{
    /// <summary>Mixes <paramref name="x"/> into a uniformly distributed 64-bit value.</summary>
    public static ulong Mix(ulong x)
    {
        x += 0x9e3779b97f4a7c15UL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9UL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebUL;
        return x ^ (x >> 31);
    }
}
