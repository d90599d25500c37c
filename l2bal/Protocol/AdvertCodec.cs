using System.Buffers.Binary;
using System.Security.Cryptography;

namespace L2Balance.Balancer.Protocol;

/// <summary>
/// Span codec of <see cref="Advert"/>, version 1, 100 bytes, integers big-endian:
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
/// Checks run in the order of OpenBSD carp_proto_input_if (docs/conventions.md §20): length, magic, version,
/// cluster id, then the HMAC (constant-time compare), and only then are the authenticated fields
/// interpreted. Replay and configuration checks need state: <see cref="AdvertVerifier"/>.
/// </summary>
internal static class AdvertCodec
{
    /// <summary>Total length of a version-1 advert.</summary>
    public const int Length = 100;

    /// <summary>"L2BA".</summary>
    public const uint Magic = 0x4C324241;

    /// <summary>Wire version.</summary>
    public const byte Version = 1;

    /// <summary>Bytes covered by the HMAC.</summary>
    public const int SignedLength = 68;

    /// <summary>Shortest key accepted (RFC 2104 section 3: keys shorter than the hash output weaken it).</summary>
    public const int MinimumKeyLength = 16;

    private const int MinimumHeader = 12;

    /// <summary>Writes <paramref name="advert"/> and its HMAC; returns <see cref="Length"/>.</summary>
    public static int Write(in Advert advert, ReadOnlySpan<byte> key, Span<byte> destination)
    {
        RequireKey(key);
        return Write(advert, key, null, destination);
    }

    /// <summary>
    /// As <see cref="Write(in Advert, ReadOnlySpan{byte}, Span{byte})"/> with a reusable HMAC
    /// (<see cref="IncrementalHash.CreateHMAC(HashAlgorithmName, byte[])"/> with the cluster key):
    /// the daemon's path, which spares a native HMAC context per advert. Not thread-safe.
    /// </summary>
    public static int Write(in Advert advert, IncrementalHash hmac, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(hmac);
        return Write(advert, default, hmac, destination);
    }

    private static int Write(in Advert advert, ReadOnlySpan<byte> key, IncrementalHash? hmac, Span<byte> destination)
    {
        if (destination.Length < Length)
        {
            throw new ArgumentException($"An advert needs {Length} bytes.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt32BigEndian(destination, Magic);
        destination[4] = Version;
        destination[5] = (byte)advert.State;
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)advert.Flags);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], advert.ClusterId);
        BinaryPrimitives.WriteUInt16BigEndian(destination[12..], advert.NodeId);
        BinaryPrimitives.WriteUInt16BigEndian(destination[14..], advert.NodeCount);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], advert.Incarnation);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], advert.Sequence);
        BinaryPrimitives.WriteUInt128BigEndian(destination[32..], advert.ConfigDigest);
        BinaryPrimitives.WriteUInt64BigEndian(destination[48..], advert.AliveView);
        BinaryPrimitives.WriteUInt64BigEndian(destination[56..], advert.ActiveView);
        BinaryPrimitives.WriteUInt32BigEndian(destination[64..], advert.HeldCount);
        Mac(key, hmac, destination[..SignedLength], destination.Slice(SignedLength, HMACSHA256.HashSizeInBytes));
        return Length;
    }

    /// <summary>
    /// Verifies and parses one datagram (stateless part). On failure <paramref name="advert"/> is
    /// default and nothing of the datagram may be used.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> datagram, uint clusterId, ReadOnlySpan<byte> key, out Advert advert, out AdvertRejection rejection)
    {
        RequireKey(key);
        return TryParse(datagram, clusterId, key, null, out advert, out rejection);
    }

    /// <summary>As the key form, with a reusable HMAC (see <see cref="Write(in Advert, IncrementalHash, Span{byte})"/>).</summary>
    public static bool TryParse(ReadOnlySpan<byte> datagram, uint clusterId, IncrementalHash hmac, out Advert advert, out AdvertRejection rejection)
    {
        ArgumentNullException.ThrowIfNull(hmac);
        return TryParse(datagram, clusterId, default, hmac, out advert, out rejection);
    }

    private static bool TryParse(ReadOnlySpan<byte> datagram, uint clusterId, ReadOnlySpan<byte> key, IncrementalHash? hmac, out Advert advert, out AdvertRejection rejection)
    {
        advert = default;
        rejection = CheckEnvelope(datagram, clusterId, key, hmac);
        if (rejection != AdvertRejection.None)
        {
            return false;
        }

        // Authenticated from here on: the fields were written by a holder of the cluster key.
        var candidate = new Advert(
            ClusterId: clusterId,
            NodeId: BinaryPrimitives.ReadUInt16BigEndian(datagram[12..]),
            NodeCount: BinaryPrimitives.ReadUInt16BigEndian(datagram[14..]),
            State: (AdvertState)datagram[5],
            Incarnation: BinaryPrimitives.ReadUInt64BigEndian(datagram[16..]),
            Sequence: BinaryPrimitives.ReadUInt64BigEndian(datagram[24..]),
            ConfigDigest: BinaryPrimitives.ReadUInt128BigEndian(datagram[32..]),
            AliveView: BinaryPrimitives.ReadUInt64BigEndian(datagram[48..]),
            ActiveView: BinaryPrimitives.ReadUInt64BigEndian(datagram[56..]),
            HeldCount: BinaryPrimitives.ReadUInt32BigEndian(datagram[64..]),
            Flags: (AdvertFlags)BinaryPrimitives.ReadUInt16BigEndian(datagram[6..]));
        rejection = CheckFields(candidate);
        if (rejection != AdvertRejection.None)
        {
            return false;
        }

        advert = candidate;
        return true;
    }

    private static AdvertRejection CheckEnvelope(ReadOnlySpan<byte> d, uint clusterId, ReadOnlySpan<byte> key, IncrementalHash? hmac)
    {
        if (d.Length < MinimumHeader)
        {
            return AdvertRejection.Truncated;
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(d) != Magic)
        {
            return AdvertRejection.BadMagic;
        }

        if (d[4] != Version)
        {
            return AdvertRejection.BadVersion;
        }

        if (d.Length != Length)
        {
            return d.Length < Length ? AdvertRejection.Truncated : AdvertRejection.BadLength;
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(d[8..]) != clusterId)
        {
            return AdvertRejection.OtherCluster;
        }

        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        Mac(key, hmac, d[..SignedLength], mac);
        // Constant time: a byte-wise early exit would let a forger learn the MAC byte by byte.
        return CryptographicOperations.FixedTimeEquals(mac, d.Slice(SignedLength, HMACSHA256.HashSizeInBytes))
            ? AdvertRejection.None
            : AdvertRejection.BadHmac;
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

    private static void RequireKey(ReadOnlySpan<byte> key)
    {
        if (key.Length < MinimumKeyLength)
        {
            throw new ArgumentException($"The cluster key must have at least {MinimumKeyLength} bytes.", nameof(key));
        }
    }
}
