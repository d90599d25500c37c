using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Balancer.Cluster;

/// <summary>
/// Bit-exact user-space mirror of the kernel's nft expressions <c>jhash ip saddr mod B seed S</c>
/// and <c>jhash ip6 saddr mod B seed S</c>.
/// </summary>
/// <remarks>
/// nft_jhash_eval (net/netfilter/nft_hash.c) computes
/// <c>reciprocal_scale(jhash(&amp;saddr, 4, seed), B)</c>, i.e. <c>((u64)h * B) &gt;&gt; 32</c>, not <c>h % B</c>.
/// <c>jhash()</c> is Bob Jenkins' lookup3 as written in include/linux/jhash.h: a = b = c =
/// JHASH_INITVAL + length + initval; the 12-byte loop does not run for 4 bytes; the tail
/// switch adds the 4 bytes little-endian into <c>a</c> (case 4..1) and <c>__jhash_final</c> mixes.
/// For 16 bytes (an IPv6 address) the 12-byte loop runs once (<c>while (length &gt; 12)</c>: words
/// 0..2 read in CPU order, little-endian on the x86 and arm64 hosts l2bal runs on, then
/// <c>__jhash_mix</c>) and word 3 is the 4-byte tail, as above.
/// The address bytes are hashed in network order, as they sit in the IP header.
/// Verified against the kernel in the lab (docs/design.md#buckets-and-the-hash).
/// </remarks>
internal static class BucketHash
{
    /// <summary>JHASH_INITVAL of include/linux/jhash.h ("an arbitrary initial parameter").</summary>
    public const uint JhashInitval = 0xdeadbeef;

    /// <summary>The kernel's <c>jhash(key, length, seed)</c> over an address: 4 bytes (IPv4) or 16 (IPv6).</summary>
    public static uint Jhash(ReadOnlySpan<byte> key, uint seed)
    {
        if (key.Length is not (4 or 16))
        {
            throw new ArgumentException("jhash mirror is defined for 4-byte and 16-byte keys (an IPv4 or IPv6 address).", nameof(key));
        }

        uint a, b, c;
        a = b = c = JhashInitval + (uint)key.Length + seed;
        if (key.Length == 16)
        {
            a += BinaryPrimitives.ReadUInt32LittleEndian(key);
            b += BinaryPrimitives.ReadUInt32LittleEndian(key[4..]);
            c += BinaryPrimitives.ReadUInt32LittleEndian(key[8..]);
            // __jhash_mix(a, b, c)
            a -= c; a ^= uint.RotateLeft(c, 4); c += b;
            b -= a; b ^= uint.RotateLeft(a, 6); a += c;
            c -= b; c ^= uint.RotateLeft(b, 8); b += a;
            a -= c; a ^= uint.RotateLeft(c, 16); c += b;
            b -= a; b ^= uint.RotateLeft(a, 19); a += c;
            c -= b; c ^= uint.RotateLeft(b, 4); b += a;
            key = key[12..];
        }

        // Tail switch "case 4: a += (u32)k[3] << 24; ... case 1: a += k[0];"
        a += BinaryPrimitives.ReadUInt32LittleEndian(key);
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

    /// <summary>Bucket of a source address given as its 4 (IPv4) or 16 (IPv6) network-order bytes.</summary>
    public static int Bucket(ReadOnlySpan<byte> address, int buckets, uint seed) =>
        Scale(Jhash(address, seed), buckets);

    /// <summary>Bucket of a source address, as nft <c>jhash ip saddr</c> (or <c>ip6 saddr</c>) <c>mod buckets seed seed</c>.</summary>
    public static int Bucket(IPAddress address, int buckets, uint seed)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6) || address.IsIPv4MappedToIPv6)
        {
            throw new ArgumentException("Only IPv4 and IPv6 addresses are bucketed (an IPv4-mapped one never reaches the ip6 table).", nameof(address));
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var length);
        return Bucket(bytes[..length], buckets, seed);
    }
}
