using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Balancer.Cluster;

/// <summary>
/// Bit-exact user-space mirror of the kernel's nft expression <c>jhash ip saddr mod B seed S</c>.
/// </summary>
/// <remarks>
/// nft_jhash_eval (net/netfilter/nft_hash.c) computes
/// <c>reciprocal_scale(jhash(&amp;saddr, 4, seed), B)</c>, i.e. <c>((u64)h * B) &gt;&gt; 32</c>, not <c>h % B</c>.
/// <c>jhash()</c> is Bob Jenkins' lookup3 as written in include/linux/jhash.h: a = b = c =
/// JHASH_INITVAL + length + initval; the 12-byte loop does not run for 4 bytes; the tail
/// switch adds the 4 bytes little-endian into <c>a</c> (case 4..1) and <c>__jhash_final</c> mixes.
/// The address bytes are hashed in network order, as they sit in the IP header.
/// Verified against the kernel in the lab (docs/design.md#buckets-and-the-hash).
/// </remarks>
internal static class BucketHash
{
    /// <summary>JHASH_INITVAL of include/linux/jhash.h ("an arbitrary initial parameter").</summary>
    public const uint JhashInitval = 0xdeadbeef;

    /// <summary>The kernel's <c>jhash(key, 4, seed)</c> over exactly four bytes.</summary>
    public static uint Jhash(ReadOnlySpan<byte> key4, uint seed)
    {
        if (key4.Length != 4)
        {
            throw new ArgumentException("jhash mirror is defined for 4-byte keys (an IPv4 address).", nameof(key4));
        }

        uint a, b, c;
        a = b = c = JhashInitval + 4u + seed;
        // Tail switch "case 4: a += (u32)k[3] << 24; ... case 1: a += k[0];"
        a += BinaryPrimitives.ReadUInt32LittleEndian(key4);
        // __jhash_final(a, b, c)
        c ^= b; c -= uint.RotateLeft(b, 14);
        a ^= c; a -= uint.RotateLeft(c, 11);
        b ^= a; b -= uint.RotateLeft(a, 25);
        c ^= b; c -= uint.RotateLeft(b, 16);
        a ^= c; a -= uint.RotateLeft(c, 4);
        b ^= a; b -= uint.RotateLeft(a, 14);
        c ^= b; c -= uint.RotateLeft(b, 24);
        return c;
    }

    /// <summary>The kernel's <c>reciprocal_scale(h, buckets)</c>.</summary>
    public static int Scale(uint hash, int buckets)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buckets, 1);
        return (int)(((ulong)hash * (uint)buckets) >> 32);
    }

    /// <summary>Bucket of an IPv4 source address given as its 4 network-order bytes.</summary>
    public static int Bucket(ReadOnlySpan<byte> address4, int buckets, uint seed) =>
        Scale(Jhash(address4, seed), buckets);

    /// <summary>Bucket of an IPv4 source address, as nft <c>jhash ip saddr mod buckets seed seed</c>.</summary>
    public static int Bucket(IPAddress v4, int buckets, uint seed)
    {
        ArgumentNullException.ThrowIfNull(v4);
        if (v4.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException("Only IPv4 addresses are bucketed.", nameof(v4));
        }

        Span<byte> bytes = stackalloc byte[4];
        v4.TryWriteBytes(bytes, out _);
        return Bucket(bytes, buckets, seed);
    }
}
