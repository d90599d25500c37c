using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Balancer.Cluster;

/// <summary>
/// Bit-exact user-space mirror of the kernel's nft expressions <c>jhash KEY mod B seed S</c>, KEY per
/// affinity mode: <c>ip saddr</c> (single), <c>ip saddr . th sport</c> (none), <c>ip saddr &amp; 255.255.255.0</c> (network),
/// and their ip6 twins <c>ip6 saddr</c>, <c>ip6 saddr . th sport</c>, <c>ip6 saddr &amp; ffff:ffff:ffff:ff00::</c> (the IPv6 VIP).
/// </summary>
/// <remarks>
/// nft_jhash_eval (net/netfilter/nft_hash.c) computes
/// <c>reciprocal_scale(jhash(&amp;reg, len, seed), B)</c>, i.e. <c>((u64)h * B) &gt;&gt; 32</c>, not <c>h % B</c>.
/// <c>jhash()</c> is Bob Jenkins' lookup3 as written in include/linux/jhash.h: a = b = c =
/// JHASH_INITVAL + length + initval; while more than 12 bytes remain, 12 are added (words in CPU
/// order, little-endian on the x86 and arm64 hosts l2bal runs on) and <c>__jhash_mix</c>ed; the tail
/// switch adds the last 1..12 bytes, 9..12 to <c>c</c>, 5..8 to <c>b</c>, 1..4 to <c>a</c>, and
/// <c>__jhash_final</c> mixes. So an IPv6 address (16 bytes) is one mix and a 4-byte tail.
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

    /// <summary>Length of the IPv6 key of <see cref="AffinityMode.None"/>: the 16-byte address and the register-padded port.</summary>
    public const int Address6PortKeyLength = 20;

    /// <summary>The kernel's <c>jhash(key, length, seed)</c> for a key of at least one byte.</summary>
    public static uint Jhash(ReadOnlySpan<byte> key, uint seed)
    {
        if (key.IsEmpty)
        {
            throw new ArgumentException("jhash mirror is defined for keys of at least one byte (nft never hashes an empty register).", nameof(key));
        }

        uint a, b, c;
        a = b = c = JhashInitval + (uint)key.Length + seed;
        while (key.Length > 12)
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

        Span<byte> padded = stackalloc byte[12];
        padded.Clear();
        key.CopyTo(padded);
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

    /// <summary>Bucket of a source address given as its 4 (IPv4) or 16 (IPv6) network-order bytes (mode single).</summary>
    public static int Bucket(ReadOnlySpan<byte> address, int buckets, uint seed)
    {
        if (address.Length is not (4 or 16))
        {
            throw new ArgumentException("An address is 4 bytes (IPv4) or 16 (IPv6).", nameof(address));
        }

        return Scale(Jhash(address, seed), buckets);
    }

    /// <summary>Bucket of a source address, as nft <c>jhash ip saddr</c> (or <c>ip6 saddr</c>) <c>mod buckets seed seed</c>.</summary>
    public static int Bucket(IPAddress address, int buckets, uint seed) => Bucket(address, 0, AffinityMode.Single, buckets, seed);

    /// <summary>
    /// Bucket of a flow from <paramref name="source"/>:<paramref name="sourcePort"/> to a port of
    /// affinity <paramref name="mode"/> (the port is ignored but for <see cref="AffinityMode.None"/>).
    /// IPv6 sources use the ip6 keys (<c>NftRuleset.HashKey</c>): the network of <see cref="AffinityMode.Network"/> is the /56.
    /// </summary>
    public static int Bucket(IPAddress source, int sourcePort, AffinityMode mode, int buckets, uint seed)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfNegative(sourcePort);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(sourcePort, 65535);
        bool v6 = source.AddressFamily == AddressFamily.InterNetworkV6 && !source.IsIPv4MappedToIPv6;
        if (!v6 && source.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException("Only IPv4 and IPv6 addresses are bucketed (an IPv4-mapped one never reaches the ip6 table).", nameof(source));
        }

        // The address, then the register-padded port (none); network keeps the /24 (IPv4) or the /56 (IPv6).
        int length = v6 ? 16 : 4;
        Span<byte> key = stackalloc byte[v6 ? Address6PortKeyLength : AddressPortKeyLength];
        key.Clear();
        source.TryWriteBytes(key, out _);
        switch (mode)
        {
            case AffinityMode.Single:
                return Scale(Jhash(key[..length], seed), buckets);
            case AffinityMode.Network:
                key[(v6 ? 7 : 3)..length].Clear();
                return Scale(Jhash(key[..length], seed), buckets);
            case AffinityMode.None:
                BinaryPrimitives.WriteUInt16BigEndian(key[length..], (ushort)sourcePort);
                return Scale(Jhash(key, seed), buckets);
            default:
                throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown affinity mode");
        }
    }
}
