using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace L2Balance.Balancer.Protocol;

/// <summary>
/// Span codec of <see cref="Advert"/>, versions 1 and 2, integers big-endian. Version 1, 100 bytes:
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     magic "L2BA" (0x4c324241)                 |  0
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  version = 1  |     state     |             flags             |  4
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          cluster id                           |  8
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            node id            |          node count           | 12
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      incarnation (64)                         | 16
/// |                      sequence (64)                            | 24
/// |                      config digest (128)                      | 32
/// |                      alive view (64)                          | 48
/// |                      active view (64)                         | 56
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          held count                           | 64
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            HMAC-SHA256(cluster key, bytes 0..67) (256)        | 68
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// Version 2 (docs/design.md#advert-v2), 112 bytes plus a TLV tail: the same fields, with the key
/// ids in clear ahead of them, and room for what later versions add:
/// <code>
///  0 magic "L2BA" | 4 version = 2, state, flags | 8 cluster id | 12 node id, node count
/// 16 key id (32): the signing key's id (AdvertKeys.IdOf), in clear, checked before the HMAC
/// 20 also-accepts key id (32): the other key the sender verifies with (0 = none)
/// 24 incarnation (64) | 32 sequence (64) | 40 config digest (128) | 56 alive view (64)
/// 64 active view (64) | 72 held count (32) | 76 tail length T (16), reserved = 0 (16)
/// 80 tail: T bytes of TLVs (type u8, length u8, value); a type with bit 7 set must be understood;
///    0x81 = the weights of the sender's view, N × u16 (<see cref="WeightsTlv"/>), only when one is not 100
///    0x02 = the sender's own addresses for migration: port u16, IPv4 (4) and/or IPv6 (16) (<see cref="NodeAddressesTlv"/>)
/// 80+T HMAC-SHA256(key named by the key id, bytes 0..79+T) (256)
/// </code>
/// Checks run in the order of OpenBSD carp_proto_input_if (docs/conventions.md §20): length, magic, version,
/// cluster id, (version 2) a key id this node holds, then the HMAC (constant-time compare, <see cref="MacEquals"/>), and only then are the authenticated fields
/// interpreted. Replay and configuration checks need state: <see cref="AdvertVerifier"/>.
/// </summary>
internal static class AdvertCodec
{
    /// <summary>Total length of a version-1 advert.</summary>
    public const int Length = 100;

    /// <summary>"L2BA".</summary>
    public const uint Magic = 0x4C324241;

    /// <summary>The first wire version (fixed 100 bytes, no key id).</summary>
    public const byte Version = 1;

    /// <summary>The version with key ids and a TLV tail.</summary>
    public const byte Version2 = 2;

    /// <summary>The highest version this daemon speaks.</summary>
    public const byte HighestVersion = Version2;

    /// <summary>Bytes covered by the HMAC in version 1.</summary>
    public const int SignedLength = 68;

    /// <summary>Bytes before the tail in version 2 (all signed).</summary>
    public const int V2HeaderLength = 80;

    /// <summary>A version-2 advert with an empty tail.</summary>
    public const int V2Length = V2HeaderLength + HmacLength;

    /// <summary>The longest advert this daemon writes: version 2 with the weights of 64 nodes.</summary>
    public const int V2MaxLength = V2Length + 2 + (2 * Cluster.MembershipView.MaxNodes) + 2 + NodeAddressesMaxLength;

    /// <summary>The longest advert: an Ethernet payload.</summary>
    public const int MaximumLength = 1500;

    /// <summary>Shortest key accepted (RFC 2104 section 3: keys shorter than the hash output weaken it).</summary>
    public const int MinimumKeyLength = 16;

    /// <summary>A TLV type with this bit set must be understood; one that is not makes the advert Malformed.</summary>
    public const byte CriticalTlv = 0x80;

    /// <summary>
    /// The weights of the sender's view: N × u16, each 1..1000 (docs/design.md#advert-v2). Critical: a
    /// node that skipped it would compute another table for the same view and could claim buckets the sender holds.
    /// </summary>
    public const byte WeightsTlv = CriticalTlv | 1;

    /// <summary>
    /// The sender's own addresses for live migration (docs/design.md#node-addresses): port u16, then
    /// IPv4 (4 bytes) and/or IPv6 (16), told apart by the length (6, 18 or 22). Not critical: an older
    /// node skips it and only cannot migrate to the sender; nothing it computes depends on it.
    /// </summary>
    public const byte NodeAddressesTlv = 0x02;

    private const int NodeAddressesMaxLength = 2 + 4 + 16;

    private const int HmacLength = 32;
    private const int MinimumHeader = 12;

    /// <summary>Writes <paramref name="advert"/> as version 1 and its HMAC; returns <see cref="Length"/>.</summary>
    public static int Write(in Advert advert, ReadOnlySpan<byte> key, Span<byte> destination)
    {
        AdvertKeys.RequireKey(key, nameof(key));
        return Write(advert, new AdvertEnvelope(Version, 0, 0), key, null, destination);
    }

    /// <summary>
    /// As <see cref="Write(in Advert, ReadOnlySpan{byte}, Span{byte})"/> with a reusable HMAC
    /// (<see cref="IncrementalHash.CreateHMAC(HashAlgorithmName, byte[])"/> with the cluster key):
    /// version 1. Not thread-safe.
    /// </summary>
    public static int Write(in Advert advert, IncrementalHash hmac, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(hmac);
        return Write(advert, new AdvertEnvelope(Version, 0, 0), default, hmac, destination);
    }

    /// <summary>
    /// The daemon's path: writes <paramref name="advert"/> in the version of <paramref name="envelope"/>,
    /// signed with the key of <paramref name="keys"/> it names; returns the length written.
    /// </summary>
    public static int Write(in Advert advert, in AdvertEnvelope envelope, AdvertKeys keys, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var hmac = keys.For(envelope.KeyId) ?? throw new ArgumentException($"No key with id {AdvertKeys.Format(envelope.KeyId)} is held.", nameof(envelope));
        return Write(advert, envelope, default, hmac, destination);
    }

    private static int Write(in Advert advert, in AdvertEnvelope envelope, ReadOnlySpan<byte> key, IncrementalHash? hmac, Span<byte> destination)
    {
        var v2 = envelope.Version == Version2;
        if (!v2 && envelope.Version != Version)
        {
            throw new ArgumentException($"Advert version {envelope.Version} is not spoken here.", nameof(envelope));
        }
        if (!v2 && advert.Weights is not null)
        {
            throw new ArgumentException("Weights travel only in version-2 adverts.", nameof(advert));
        }
        if (!v2 && advert.Addresses is not null)
        {
            throw new ArgumentException("Node addresses travel only in version-2 adverts.", nameof(advert));
        }
        if (advert.Addresses is { IsValid: false })
        {
            throw new ArgumentException($"Node addresses {advert.Addresses} cannot be advertised.", nameof(advert));
        }
        var weightsTlv = advert.Weights is { } w ? 2 + (2 * w.Length) : 0;
        var tail = weightsTlv + (advert.Addresses is { } a ? 2 + AddressesLength(a) : 0);
        var length = v2 ? V2Length + tail : Length;
        if (destination.Length < length)
        {
            throw new ArgumentException($"An advert needs {length} bytes.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt32BigEndian(destination, Magic);
        destination[4] = envelope.Version;
        destination[5] = (byte)advert.State;
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)advert.Flags);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], advert.ClusterId);
        BinaryPrimitives.WriteUInt16BigEndian(destination[12..], advert.NodeId);
        BinaryPrimitives.WriteUInt16BigEndian(destination[14..], advert.NodeCount);
        var body = destination[16..];
        if (v2)
        {
            BinaryPrimitives.WriteUInt32BigEndian(destination[16..], envelope.KeyId);
            BinaryPrimitives.WriteUInt32BigEndian(destination[20..], envelope.AlsoAccepts);
            body = destination[24..];
        }
        WriteBody(advert, body);
        var signed = v2 ? V2HeaderLength + tail : SignedLength;
        if (v2)
        {
            // The tail's length and the reserved half-word (docs/design.md#advert-v2).
            BinaryPrimitives.WriteUInt16BigEndian(destination[76..], (ushort)tail);
            BinaryPrimitives.WriteUInt16BigEndian(destination[78..], 0);
        }
        if (advert.Weights is { } weights)
        {
            if (weights.Length != advert.NodeCount || 2 * weights.Length > byte.MaxValue)
            {
                throw new ArgumentException($"{weights.Length} weights for {advert.NodeCount} nodes.", nameof(advert));
            }
            destination[V2HeaderLength] = WeightsTlv;
            destination[V2HeaderLength + 1] = (byte)(2 * weights.Length);
            for (var i = 0; i < weights.Length; i++)
            {
                BinaryPrimitives.WriteUInt16BigEndian(destination[(V2HeaderLength + 2 + (2 * i))..], weights[i]);
            }
        }
        if (advert.Addresses is { } addresses)
        {
            WriteAddresses(addresses, destination[(V2HeaderLength + weightsTlv)..]);
        }
        Mac(key, hmac, destination[..signed], destination.Slice(signed, HmacLength));
        return length;
    }

    private static int AddressesLength(NodeAddresses a) => 2 + (a.Ipv4 is null ? 0 : 4) + (a.Ipv6 is null ? 0 : 16);

    private static void WriteAddresses(NodeAddresses a, Span<byte> d)
    {
        d[0] = NodeAddressesTlv;
        d[1] = (byte)AddressesLength(a);
        BinaryPrimitives.WriteUInt16BigEndian(d[2..], (ushort)a.Port);
        var at = d[4..];
        if (a.Ipv4 is not null)
        {
            a.Ipv4.TryWriteBytes(at, out _);
            at = at[4..];
        }
        a.Ipv6?.TryWriteBytes(at, out _);
    }

    /// <summary>The fields from the incarnation to the held count (52 bytes), in either version.</summary>
    private static void WriteBody(in Advert advert, Span<byte> d)
    {
        BinaryPrimitives.WriteUInt64BigEndian(d, advert.Incarnation);
        BinaryPrimitives.WriteUInt64BigEndian(d[8..], advert.Sequence);
        BinaryPrimitives.WriteUInt128BigEndian(d[16..], advert.ConfigDigest);
        BinaryPrimitives.WriteUInt64BigEndian(d[32..], advert.AliveView);
        BinaryPrimitives.WriteUInt64BigEndian(d[40..], advert.ActiveView);
        BinaryPrimitives.WriteUInt32BigEndian(d[48..], advert.HeldCount);
    }

    /// <summary>
    /// Verifies and parses one datagram (stateless part), either version, with one key. On failure
    /// <paramref name="advert"/> is default and nothing of the datagram may be used.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> datagram, uint clusterId, ReadOnlySpan<byte> key, out Advert advert, out AdvertRejection rejection)
    {
        AdvertKeys.RequireKey(key, nameof(key));
        return TryParse(datagram, clusterId, key, null, null, HighestVersion, out advert, out _, out rejection);
    }

    /// <summary>As the key form, with a reusable HMAC: the HMAC decides, whatever key id a version-2 advert names.</summary>
    public static bool TryParse(ReadOnlySpan<byte> datagram, uint clusterId, IncrementalHash hmac, out Advert advert, out AdvertRejection rejection)
    {
        ArgumentNullException.ThrowIfNull(hmac);
        return TryParse(datagram, clusterId, default, hmac, null, HighestVersion, out advert, out _, out rejection);
    }

    /// <summary>
    /// The daemon's path: versions 1 to <paramref name="highestVersion"/>, with the keys of
    /// <paramref name="keys"/>. A version-2 advert naming a key not held is
    /// <see cref="AdvertRejection.UnknownKey"/> without an HMAC computed; a version-1 advert is tried
    /// with the current key, then the previous. <paramref name="envelope"/> is set whenever the
    /// datagram got as far as its key id (even when rejected), so the key it names can be reported.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> datagram, uint clusterId, AdvertKeys keys, byte highestVersion, out Advert advert, out AdvertEnvelope envelope, out AdvertRejection rejection)
    {
        ArgumentNullException.ThrowIfNull(keys);
        return TryParse(datagram, clusterId, default, null, keys, highestVersion, out advert, out envelope, out rejection);
    }

    private static bool TryParse(ReadOnlySpan<byte> d, uint clusterId, ReadOnlySpan<byte> key, IncrementalHash? hmac, AdvertKeys? keys,
        byte highestVersion, out Advert advert, out AdvertEnvelope envelope, out AdvertRejection rejection)
    {
        advert = default;
        rejection = CheckEnvelope(d, clusterId, key, hmac, keys, highestVersion, out envelope);
        if (rejection != AdvertRejection.None)
        {
            return false;
        }

        // Authenticated from here on: the fields were written by a holder of the cluster key.
        var v2 = envelope.Version == Version2;
        var body = d[(v2 ? 24 : 16)..];
        var candidate = new Advert(
            ClusterId: clusterId,
            NodeId: BinaryPrimitives.ReadUInt16BigEndian(d[12..]),
            NodeCount: BinaryPrimitives.ReadUInt16BigEndian(d[14..]),
            State: (AdvertState)d[5],
            Incarnation: BinaryPrimitives.ReadUInt64BigEndian(body),
            Sequence: BinaryPrimitives.ReadUInt64BigEndian(body[8..]),
            ConfigDigest: BinaryPrimitives.ReadUInt128BigEndian(body[16..]),
            AliveView: BinaryPrimitives.ReadUInt64BigEndian(body[32..]),
            ActiveView: BinaryPrimitives.ReadUInt64BigEndian(body[40..]),
            HeldCount: BinaryPrimitives.ReadUInt32BigEndian(body[48..]),
            Flags: (AdvertFlags)BinaryPrimitives.ReadUInt16BigEndian(d[6..]));
        rejection = CheckFields(candidate);
        if (rejection == AdvertRejection.None && v2)
        {
            rejection = CheckTail(d, candidate.NodeCount, out var weights, out var addresses);
            candidate = candidate with { Weights = weights, Addresses = addresses };
        }
        if (rejection != AdvertRejection.None)
        {
            return false;
        }

        advert = candidate;
        return true;
    }

    /// <summary>Length, magic, version, cluster id, key id, HMAC: the cheap checks first (OpenBSD carp_proto_input_if).</summary>
    private static AdvertRejection CheckEnvelope(ReadOnlySpan<byte> d, uint clusterId, ReadOnlySpan<byte> key, IncrementalHash? hmac, AdvertKeys? keys,
        byte highestVersion, out AdvertEnvelope envelope)
    {
        envelope = default;
        if (d.Length < MinimumHeader)
        {
            return AdvertRejection.Truncated;
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(d) != Magic)
        {
            return AdvertRejection.BadMagic;
        }

        var version = d[4];
        if (version is < Version or > HighestVersion || version > highestVersion)
        {
            return AdvertRejection.BadVersion;
        }

        var v2 = version == Version2;
        var length = v2 ? V2LengthOf(d) : Length;
        if (d.Length != length)
        {
            return d.Length < length ? AdvertRejection.Truncated : AdvertRejection.BadLength;
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(d[8..]) != clusterId)
        {
            return AdvertRejection.OtherCluster;
        }

        var signed = length - HmacLength;
        if (!v2)
        {
            envelope = new AdvertEnvelope(Version, keys?.CurrentId ?? 0, 0);
            if (keys is null)
            {
                return Verify(key, hmac, d, signed);
            }
            // No key id in version 1: the current key, then the previous one.
            if (Verify(default, keys.Current, d, signed) == AdvertRejection.None)
            {
                return AdvertRejection.None;
            }
            envelope = envelope with { KeyId = keys.PreviousId };
            return keys.Previous is { } previous && Verify(default, previous, d, signed) == AdvertRejection.None
                ? AdvertRejection.None
                : AdvertRejection.BadHmac;
        }

        envelope = new AdvertEnvelope(Version2, BinaryPrimitives.ReadUInt32BigEndian(d[16..]), BinaryPrimitives.ReadUInt32BigEndian(d[20..]));
        if (keys is not null)
        {
            // A key this node does not hold costs no HMAC: the id is in clear for that (and for the report).
            hmac = keys.For(envelope.KeyId);
            if (hmac is null)
            {
                return AdvertRejection.UnknownKey;
            }
        }
        return Verify(key, hmac, d, signed);
    }

    /// <summary>A version-2 advert's whole length from its tail length (at least the header's, so a short datagram reads as Truncated).</summary>
    private static int V2LengthOf(ReadOnlySpan<byte> d) =>
        d.Length < V2HeaderLength ? V2Length : V2Length + BinaryPrimitives.ReadUInt16BigEndian(d[76..]);

    private static AdvertRejection Verify(ReadOnlySpan<byte> key, IncrementalHash? hmac, ReadOnlySpan<byte> d, int signed)
    {
        Span<byte> mac = stackalloc byte[HmacLength];
        Mac(key, hmac, d[..signed], mac);
        return MacEquals(mac, d.Slice(signed, HmacLength)) ? AdvertRejection.None : AdvertRejection.BadHmac;
    }

    /// <summary>
    /// Whether two HMAC-SHA256 values are equal, in constant time: a byte-wise early exit would let a
    /// forger learn the MAC byte by byte, so the four 64-bit words of each are XORed, the differences
    /// ORed, and only the result compared. What CryptographicOperations.FixedTimeEquals does, without
    /// its unoptimized byte loop: 0.006 µs against 0.12 here (docs/benchmarks.md#advert-reject-the-receive-ring-and-the-cheaper-compare-2026-12-03).
    /// </summary>
    internal static bool MacEquals(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != HmacLength || b.Length != HmacLength)
        {
            return false;
        }
        var difference = (MemoryMarshal.Read<ulong>(a) ^ MemoryMarshal.Read<ulong>(b))
            | (MemoryMarshal.Read<ulong>(a[8..]) ^ MemoryMarshal.Read<ulong>(b[8..]))
            | (MemoryMarshal.Read<ulong>(a[16..]) ^ MemoryMarshal.Read<ulong>(b[16..]))
            | (MemoryMarshal.Read<ulong>(a[24..]) ^ MemoryMarshal.Read<ulong>(b[24..]));
        return difference == 0;
    }

    /// <summary>
    /// The reserved half-word and the TLV tail of an authenticated version-2 advert: each TLV must
    /// fit, and a critical type this version does not know is refused, so a later meaning is never
    /// half-understood; other unknown types are skipped. The weights (<see cref="WeightsTlv"/>) must
    /// come at most once, with one weight of 1..1000 per node; the node addresses
    /// (<see cref="NodeAddressesTlv"/>) at most once, of a length this version reads.
    /// </summary>
    private static AdvertRejection CheckTail(ReadOnlySpan<byte> d, int nodeCount, out ushort[]? weights, out NodeAddresses? addresses)
    {
        weights = null;
        addresses = null;
        if (BinaryPrimitives.ReadUInt16BigEndian(d[78..]) != 0)
        {
            return AdvertRejection.Malformed;
        }
        var tail = d[V2HeaderLength..^HmacLength];
        while (tail.Length > 0)
        {
            if (tail.Length < 2 || tail.Length < 2 + tail[1])
            {
                return AdvertRejection.Malformed;
            }
            if (tail[0] == WeightsTlv)
            {
                if (weights is not null || !TryReadWeights(tail.Slice(2, tail[1]), nodeCount, out weights))
                {
                    weights = null;
                    return AdvertRejection.Malformed;
                }
            }
            else if (tail[0] == NodeAddressesTlv)
            {
                // Authenticated: a value this version cannot read is a sender's bug, refused like a bad weight.
                if (addresses is not null || !TryReadAddresses(tail.Slice(2, tail[1]), out addresses))
                {
                    weights = null;
                    addresses = null;
                    return AdvertRejection.Malformed;
                }
            }
            else if ((tail[0] & CriticalTlv) != 0)
            {
                return AdvertRejection.Malformed;
            }
            tail = tail[(2 + tail[1])..];
        }
        return AdvertRejection.None;
    }

    private static bool TryReadAddresses(ReadOnlySpan<byte> value, out NodeAddresses? addresses)
    {
        addresses = null;
        if (value.Length is not (6 or 18 or 22))
        {
            return false;
        }
        var port = BinaryPrimitives.ReadUInt16BigEndian(value);
        var ipv4 = value.Length is 6 or 22 ? new System.Net.IPAddress(value.Slice(2, 4)) : null;
        var ipv6 = value.Length is 18 or 22 ? new System.Net.IPAddress(value[^16..]) : null;
        var read = new NodeAddresses(ipv4, ipv6, port);
        addresses = read.IsValid ? read : null;
        return addresses is not null;
    }

    private static bool TryReadWeights(ReadOnlySpan<byte> value, int nodeCount, out ushort[]? weights)
    {
        weights = null;
        if (value.Length != 2 * nodeCount)
        {
            return false;
        }
        var read = new ushort[nodeCount];
        for (var i = 0; i < nodeCount; i++)
        {
            read[i] = BinaryPrimitives.ReadUInt16BigEndian(value[(2 * i)..]);
            if (read[i] is < Cluster.Ownership.MinWeight or > Cluster.Ownership.MaxWeight)
            {
                return false;
            }
        }
        weights = read;
        return true;
    }

    /// <summary>HMAC-SHA256 of <paramref name="data"/>: with <paramref name="hmac"/> when given (reset after), else one-shot with <paramref name="key"/>.</summary>
    private static void Mac(ReadOnlySpan<byte> key, IncrementalHash? hmac, ReadOnlySpan<byte> data, Span<byte> mac)
    {
        if (hmac is null)
        {
            HMACSHA256.HashData(key, data, mac);
            return;
        }
        hmac.AppendData(data);
        hmac.GetHashAndReset(mac);
    }

    private static AdvertRejection CheckFields(in Advert a)
    {
        if (a.NodeId == 0 || a.NodeId > a.NodeCount)
        {
            return AdvertRejection.BadNodeId;
        }

        if (a.NodeCount > Cluster.MembershipView.MaxNodes
            || a.State is < AdvertState.Active or > AdvertState.Leaving
            || (a.Flags & ~AdvertFlags.Settled) != 0)
        {
            return AdvertRejection.Malformed;
        }

        ulong beyond = a.NodeCount == Cluster.MembershipView.MaxNodes ? 0 : ~((1UL << a.NodeCount) - 1);
        return ((a.AliveView | a.ActiveView) & beyond) != 0 ? AdvertRejection.Malformed : AdvertRejection.None;
    }
}
