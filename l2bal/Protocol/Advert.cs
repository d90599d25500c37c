using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using L2Balance.Balancer.Cluster;

namespace L2Balance.Balancer.Protocol;

/// <summary>The state a node advertises about itself.</summary>
internal enum AdvertState : byte
{
    /// <summary>Healthy; owns its share.</summary>
    Active = 1,

    /// <summary>Local service fails its probes; owns nothing, keeps established flows.</summary>
    Unhealthy = 2,

    /// <summary>Operator drain; owns nothing, keeps established flows.</summary>
    Draining = 3,

    /// <summary>Clean shutdown: holds nothing any more; peers may treat it as dead at once.</summary>
    Leaving = 4,
}

/// <summary>Flag bits of an advert; unknown bits are rejected as <see cref="AdvertRejection.Malformed"/>.</summary>
[Flags]
internal enum AdvertFlags : ushort
{
    None = 0,

    /// <summary>The sender holds exactly its share of its view's table (no claim pending).</summary>
    Settled = 1,
}

/// <summary>
/// Why a received advert was dropped. Counted per reason and logged once per interval; an
/// advert is never acted on unless the reason is <see cref="None"/> (docs/conventions.md §6, §20; OpenBSD carpstats).
/// </summary>
internal enum AdvertRejection
{
    /// <summary>Accepted.</summary>
    None = 0,

    /// <summary>Shorter than the fixed layout.</summary>
    Truncated,

    /// <summary>Longer than the fixed layout of its version.</summary>
    BadLength,

    /// <summary>Not an L2Balance advert.</summary>
    BadMagic,

    /// <summary>A version this daemon does not speak.</summary>
    BadVersion,

    /// <summary>Another cluster on the same segment (not an attack; checked before the HMAC so it costs nothing).</summary>
    OtherCluster,

    /// <summary>HMAC does not verify: wrong key or forged/altered advert.</summary>
    BadHmac,

    /// <summary>Node id 0 or greater than the advertised node count.</summary>
    BadNodeId,

    /// <summary>Carries this node's own id: our own frame looped back, or a duplicate id in configuration.</summary>
    FromSelf,

    /// <summary>Authenticated but a field is out of range (state, flags, node count, view bits).</summary>
    Malformed,

    /// <summary>Older incarnation, or a sequence not above the last one accepted in this incarnation.</summary>
    Replayed,

    /// <summary>The sender runs another configuration (VIP, B, seed, N, cluster id): reported, never acted on.</summary>
    ConfigMismatch,

    /// <summary>Version 2 naming a key id this node does not hold: another key (reported by id), or a forger; no HMAC is computed.</summary>
    UnknownKey,
}

/// <summary>
/// A membership advertisement, sent every AdvertInterval by every node (CARP-like: RFC 5798
/// VRRPv3 for the periodic advert, OpenBSD carp(4) for the HMAC over the whole message and the
/// counter against replay). Field order and sizes: see <see cref="AdvertCodec"/>.
/// </summary>
/// <param name="ClusterId">Stops cross-talk between clusters sharing a segment (and keys).</param>
/// <param name="NodeId">Sender, 1..NodeCount; authenticated, so a key-less host cannot impersonate a node.</param>
/// <param name="NodeCount">Sender's N; also bound into the digest.</param>
/// <param name="State">Sender's own state. Authenticated, so nobody without the key can mark a
/// healthy node unhealthy (and strip its buckets) or a sick one active.</param>
/// <param name="Incarnation">Start time of the sender's process (ns since the epoch): lets a restarted
/// daemon restart its sequence at 0 while an attacker replaying adverts of an earlier run is still refused.</param>
/// <param name="Sequence">Strictly increasing within an incarnation: stops replay of a captured advert
/// (for example one in which the sender still held buckets it has since released).</param>
/// <param name="ConfigDigest">See <see cref="AdvertConfigDigest"/>: stops two nodes with different
/// configurations from computing different tables and double-owning buckets.</param>
/// <param name="AliveView">Bit id-1: nodes the sender hears (diagnostics; split-brain detection).</param>
/// <param name="ActiveView">Bit id-1: nodes the sender considers active. Ownership is a pure function of it, so
/// it tells peers which buckets the sender may hold (a superset of what it holds: see HandoverPlanner).</param>
/// <param name="HeldCount">Buckets the sender's kernel accepts now (diagnostics: status and partition checks).</param>
/// <param name="Flags">See <see cref="AdvertFlags"/>. Unknown bits are refused rather than ignored, so a
/// future meaning cannot be half-understood by an old daemon.</param>
/// <param name="Weights">Each node's weight (index id-1) in the sender's view, version 2 only (TLV
/// <see cref="AdvertCodec.WeightsTlv"/>); null when every weight is the default, as then the table is the unweighted one.</param>
/// <param name="Addresses">The sender's own addresses for live migration, version 2 only (TLV
/// <see cref="AdvertCodec.NodeAddressesTlv"/>); null when the sender does not migrate.</param>
/// <remarks>
/// Held sets are not listed bucket by bucket: a sender holds a subset of its share in the table
/// of <paramref name="ActiveView"/> (HandoverPlanner), so the view is a compact, exact-enough
/// statement of what it may hold and what it has released, for any B, in 8 bytes. The 32-byte
/// HMAC-SHA256 (full length, RFC 2104; carp(4) likewise keeps the whole SHA1-HMAC) over every
/// byte before it stops forgery and alteration of all fields by hosts without the cluster key.
/// </remarks>
internal readonly record struct Advert(
    uint ClusterId,
    ushort NodeId,
    ushort NodeCount,
    AdvertState State,
    ulong Incarnation,
    ulong Sequence,
    UInt128 ConfigDigest,
    ulong AliveView,
    ulong ActiveView,
    uint HeldCount,
    AdvertFlags Flags,
    ushort[]? Weights = null,
    NodeAddresses? Addresses = null);

/// <summary>
/// Where a node takes migrated sessions: its own IPv4 and/or IPv6 address on the segment (never
/// the VIP) and the migration channel's port (docs/design.md#node-addresses).
/// </summary>
internal sealed record NodeAddresses(IPAddress? Ipv4, IPAddress? Ipv6, int Port)
{
    /// <summary>The migration channel's default port.</summary>
    public const int DefaultPort = 1081;

    /// <summary>Whether the fields can travel: at least one address, each of its family, not unspecified, a port 1..65535.</summary>
    public bool IsValid =>
        (Ipv4 is not null || Ipv6 is not null) && Port is >= 1 and <= 65535
        && (Ipv4 is null || (Ipv4.AddressFamily == AddressFamily.InterNetwork && !Ipv4.Equals(IPAddress.Any)))
        && (Ipv6 is null || (Ipv6.AddressFamily == AddressFamily.InterNetworkV6 && !Ipv6.Equals(IPAddress.IPv6Any) && !Ipv6.IsIPv4MappedToIPv6));

    /// <summary>The address a peer moves sessions to: IPv4 when there is one (the VIP and the legs are IPv4).</summary>
    public IPEndPoint Endpoint => new(Ipv4 ?? Ipv6!, Port);

    /// <inheritdoc/>
    public override string ToString() => string.Join(' ', new[] { Ipv4, Ipv6 }.OfType<IPAddress>()
        .Select(a => new IPEndPoint(a, Port).ToString()));
}

/// <summary>The configuration digest carried by every advert.</summary>
internal static class AdvertConfigDigest
{
    /// <summary>Bytes of one affinity rule in the digest: protocol number, port u16, mode.</summary>
    private const int AffinityRuleBytes = 4;

    /// <summary>
    /// First 16 bytes (big-endian) of SHA-256(VIP[4] ‖ B u32 ‖ seed u32 ‖ N u16 ‖ cluster id u32
    /// ‖ VIP6[16] when the cluster has an IPv6 VIP (VIP[4] is then 0.0.0.0 if it has no IPv4 one)
    /// ‖ per affinity rule other than single, in canonical order: protocol u8 ‖ port u16 ‖ mode u8: 1 none, 2 network),
    /// integers big-endian. Everything the ownership table and the buckets of flows depend on, so
    /// equal digests mean equal tables for equal views. An IPv4-only cluster without affinity rules
    /// hashes the 18 bytes of older daemons, which therefore still agree. Not secret: the HMAC is what authenticates.
    /// </summary>
    public static UInt128 Compute(IPAddress? vip, int buckets, uint seed, int nodeCount, uint clusterId, IPAddress? vip6 = null, IEnumerable<AffinityRule>? affinity = null)
    {
        if (vip is null ? vip6 is null : vip.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException("The VIP is an IPv4 address (null only beside an IPv6 one).", nameof(vip));
        }
        if (vip6 is not null && vip6.AddressFamily != AddressFamily.InterNetworkV6)
        {
            throw new ArgumentException("The second VIP is an IPv6 address.", nameof(vip6));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(buckets, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nodeCount, ushort.MaxValue);
        var rules = AffinityRule.Effective(affinity ?? []);
        int rulesAt = vip6 is null ? 18 : 34;
        var input = new byte[rulesAt + (AffinityRuleBytes * rules.Count)];
        vip?.TryWriteBytes(input, out _);
        vip6?.TryWriteBytes(input.AsSpan(18), out _);
        BinaryPrimitives.WriteUInt32BigEndian(input.AsSpan(4), (uint)buckets);
        BinaryPrimitives.WriteUInt32BigEndian(input.AsSpan(8), seed);
        BinaryPrimitives.WriteUInt16BigEndian(input.AsSpan(12), (ushort)nodeCount);
        BinaryPrimitives.WriteUInt32BigEndian(input.AsSpan(14), clusterId);
        for (int i = 0; i < rules.Count; i++)
        {
            var at = input.AsSpan(rulesAt + (AffinityRuleBytes * i));
            at[0] = rules[i].ProtocolNumber;
            BinaryPrimitives.WriteUInt16BigEndian(at[1..], (ushort)rules[i].Port);
            at[3] = (byte)rules[i].Mode;
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(input, hash);
        return BinaryPrimitives.ReadUInt128BigEndian(hash);
    }
}
