using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Balancer.Cluster;

/// <summary>
/// Bit-exact user-space mirror of the kernel's nft expressions <c>jhash KEY mod B seed S</c>, KEY per
/// affinity mode: <c>ip saddr</c> (single), <c>ip saddr . th sport</c> (none), <c>ip saddr &amp; 255.255.255.0</c> (network).
/// </summary>
/// <remarks>
/// nft_jhash_eval (net/netfilter/nft_hash.c) computes
/// <c>reciprocal_scale(jhash(&amp;reg, len, seed), B)</c>, i.e. <c>((u64)h * B) &gt;&gt; 32</c>, not <c>h % B</c>.
/// <c>jhash()</c> is Bob Jenkins' lookup3 as written in include/linux/jhash.h: a = b = c =
/// JHASH_INITVAL + length + initval; the 12-byte loop does not run for up to 12 bytes; the tail
/// switch adds bytes 9..12 to <c>c</c>, 5..8 to <c>b</c>, 1..4 to <c>a</c>, little-endian, and <c>__jhash_final</c> mixes.
/// Fields sit in the registers in network order; a concatenation pads each field to 4 bytes with
/// zeros (nft_payload_eval), so <c>ip saddr . th sport</c> hashes 8 bytes: address, port, 0, 0.
/// Verified against the kernel in the lab (docs/design.md#buckets-and-the-hash).
/// </remarks>
internal static class BucketHash
{
    /// <summary>JHASH_INITVAL of include/linux/jhash.h ("an arbitrary initial parameter").</summary>
    public const uint JhashInitval = 0xdeadbeef;

    /// <summary>Length of the key of <see cref="AffinityMode.None"/>: the address and the register-padded port.</summary>
    public const int AddressPortKeyLength = 8;

    /// <summary>The kernel's <c>jhash(key, length, seed)</c> for 1 to 12 bytes (every key nft hashes here).</summary>
    public static uint Jhash(ReadOnlySpan<byte> key, uint seed)
    {
        if (key.Length is < 1 or > 12)
        {
            throw new ArgumentException("jhash mirror is defined for 1 to 12 bytes (one pass of the tail switch).", nameof(key));
        }

        Span<byte> padded = stackalloc byte[12];
        padded.Clear();
        key.CopyTo(padded);
        uint a, b, c;
        a = b = c = JhashInitval + (uint)key.Length + seed;
        // Tail switch: "case 12: c += k[11] << 24 ... case 1: a += k[0]"; the missing bytes add 0.
        a += BinaryPrimitives.ReadUInt32LittleEndian(padded);
        b += BinaryPrimitives.ReadUInt32LittleEndian(padded[4..]);
        c += BinaryPrimitives.ReadUInt32LittleEndian(padded[8..]);
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

    /// <summary>Bucket of an IPv4 source address given as its 4 network-order bytes (mode single).</summary>
    public static int Bucket(ReadOnlySpan<byte> address4, int buckets, uint seed)
    {
        if (address4.Length != 4)
        {
            throw new ArgumentException("An IPv4 address is 4 bytes.", nameof(address4));
        }

        return Scale(Jhash(address4, seed), buckets);
    }

    /// <summary>Bucket of an IPv4 source address, as nft <c>jhash ip saddr mod buckets seed seed</c>.</summary>
    public static int Bucket(IPAddress v4, int buckets, uint seed) => Bucket(v4, 0, AffinityMode.Single, buckets, seed);

    /// <summary>
    /// Bucket of a flow from <paramref name="source"/>:<paramref name="sourcePort"/> to a port of
    /// affinity <paramref name="mode"/> (the port is ignored but for <see cref="AffinityMode.None"/>).
    /// </summary>
    public static int Bucket(IPAddress source, int sourcePort, AffinityMode mode, int buckets, uint seed)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException("Only IPv4 addresses are bucketed.", nameof(source));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(sourcePort);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(sourcePort, 65535);
        Span<byte> key = stackalloc byte[AddressPortKeyLength];
        key.Clear();
        source.TryWriteBytes(key, out _);
        switch (mode)
        {
            case AffinityMode.Single:
                return Scale(Jhash(key[..4], seed), buckets);
            case AffinityMode.Network:
                key[3] = 0;
                return Scale(Jhash(key[..4], seed), buckets);
            case AffinityMode.None:
                BinaryPrimitives.WriteUInt16BigEndian(key[4..], (ushort)sourcePort);
                return Scale(Jhash(key, seed), buckets);
            default:
                throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown affinity mode");
        }
    }
}
