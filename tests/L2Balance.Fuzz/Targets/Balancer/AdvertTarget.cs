using System.Buffers.Binary;
using System.Security.Cryptography;
using FsCheck;
using FsCheck.Fluent;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Protocol;
using L2Balance.Fuzz.Engine;

namespace L2Balance.Fuzz.Targets.Balancer;

/// <summary>
/// Adverts past the HMAC check, versions 1 and 2: mutated payloads are signed with the test keys
/// (<see cref="Finish"/>: version 1 with the current key, version 2 with the key its key id names)
/// so that most reach the decoding of the authenticated fields and the TLV tail, and some are left
/// unsigned or cut so that the envelope checks (key id included) run too. The parse is one call of
/// the daemon's decode path (<see cref="Decode"/>: <see cref="AdvertKeys"/> with a current and a
/// previous key, both versions spoken); an accepted advert is written back byte for byte.
/// </summary>
internal sealed class AdvertTarget : FuzzTarget<byte[], AdvertTarget.Result>, IDisposable
{
    public const uint ClusterId = 0x4c32_0001;

    /// <summary>The current test key: 32 fixed bytes (a cluster key is at least 16).</summary>
    public static readonly byte[] Key = [.. Enumerable.Range(0, 32).Select(i => (byte)(0xa0 + i))];

    /// <summary>The previous test key, as during a key change (docs/design.md#key-rollover).</summary>
    public static readonly byte[] PreviousKey = [.. Enumerable.Range(0, 32).Select(i => (byte)(0x10 + i))];

    private readonly AdvertKeys _keys = new(Key, PreviousKey);

    public override string Name => "advert";

    public override string Product => "l2bal";

    public override string EntryPoint => "AdvertCodec.TryParse with AdvertKeys, versions 1 and 2 (signed with the test keys)";

    public override int MaxInputLength => 400;

    private static readonly Advert[] SeedAdverts =
    [
        new(ClusterId, 1, 3, AdvertState.Active, 1_700_000_000_000_000_000, 1, UInt128.MaxValue, 0b111, 0b111, 342, AdvertFlags.Settled),
        new(ClusterId, 2, 2, AdvertState.Draining, 1, ulong.MaxValue, 0, 0b10, 0b01, 0, AdvertFlags.None),
        new(ClusterId, 64, 64, AdvertState.Leaving, ulong.MaxValue, 0, 12345, ulong.MaxValue, ulong.MaxValue, uint.MaxValue, AdvertFlags.Settled),
        new(ClusterId, 1, 1, AdvertState.Unhealthy, 0, 0, 1, 1, 0, 1024, AdvertFlags.None),
    ];

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        .. SeedAdverts.Select(a => Signed(a, AdvertCodec.Version, 0, 0)),
        .. SeedAdverts.Select(a => Signed(a, AdvertCodec.Version2, AdvertKeys.IdOf(Key), 0)),
        Signed(SeedAdverts[0], AdvertCodec.Version2, AdvertKeys.IdOf(Key), AdvertKeys.IdOf(PreviousKey)),
        Signed(SeedAdverts[1], AdvertCodec.Version2, AdvertKeys.IdOf(PreviousKey), AdvertKeys.IdOf(Key)),
        // A version-2 advert with a tail: one TLV of a type this version does not know and may skip.
        WithTail(Signed(SeedAdverts[2], AdvertCodec.Version2, AdvertKeys.IdOf(Key), 0), [0x01, 0x03, 0xaa, 0xbb, 0xcc]),
        // The node addresses of a node that migrates (non-critical TLV 0x02): port, IPv4, IPv6.
        WithTail(Signed(SeedAdverts[2], AdvertCodec.Version2, AdvertKeys.IdOf(Key), 0), [0x02, 22, 0x04, 0x39, 198, 18, 0, 2, 0xfd, 0xc6, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
    ];

    /// <summary>Adverts with every field drawn from its valid range (and edges of the invalid one, to be refused), in either version.</summary>
    public override Gen<byte[]> Generator { get; } =
        from count in Gen.OneOf(Gen.Choose(1, MembershipView.MaxNodes), Gen.Elements(0, 1, MembershipView.MaxNodes, MembershipView.MaxNodes + 1, ushort.MaxValue))
        from id in Gen.OneOf(Gen.Choose(1, Math.Max(1, count)), Gen.Elements(0, count + 1))
        from state in Gen.Choose(0, 5)
        from flags in Gen.Elements(0, 1, 1, 2, 0x8000)
        from version in Gen.Elements(AdvertCodec.Version, AdvertCodec.Version2, AdvertCodec.Version2)
        from keyId in Gen.Elements(AdvertKeys.IdOf(Key), AdvertKeys.IdOf(Key), AdvertKeys.IdOf(PreviousKey))
        from alsoAccepts in Gen.Elements(0u, AdvertKeys.IdOf(Key), AdvertKeys.IdOf(PreviousKey), 0xdeadbeef)
        from numbers in Gen.Choose(int.MinValue, int.MaxValue).Select(n => (ulong)(uint)n * 0x9e3779b97f4a7c15UL).ArrayOf(6)
        select Signed(new Advert(ClusterId, (ushort)id, (ushort)count, (AdvertState)state, numbers[0], numbers[1], numbers[2],
            numbers[3] & Mask(count), numbers[4] & Mask(count), (uint)numbers[5], (AdvertFlags)flags), version, keyId, alsoAccepts);

    public override IReadOnlyList<byte[]> Tokens { get; } =
    [
        [0x4c, 0x32, 0x42, 0x41], [1], [2], [0, 0, 0, 0], [0xff, 0xff], [0x80, 0x00], [0x01, 0x00],
        KeyIdBytes(Key), KeyIdBytes(PreviousKey),
    ];

    /// <summary>Signs 9 in 10 inputs long enough to be an advert, so the HMAC passes and the decoder proper is reached.</summary>
    public override byte[] Finish(byte[] input, ref FuzzRandom random)
    {
        if (random.Percent(90))
        {
            Sign(input);
        }

        return input;
    }

    /// <summary>The one call of the codec: re-point here when its decode entry point changes.</summary>
    public bool Decode(ReadOnlySpan<byte> datagram, out Advert advert, out AdvertEnvelope envelope, out AdvertRejection rejection) =>
        AdvertCodec.TryParse(datagram, ClusterId, _keys, AdvertCodec.HighestVersion, out advert, out envelope, out rejection);

    protected override byte[] Convert(byte[] input, ref FuzzRandom random) => input;

    protected override Result Parse(byte[] input)
    {
        bool ok = Decode(input, out var advert, out var envelope, out var rejection);
        return new Result(ok, advert, envelope, rejection);
    }

    protected override bool IsAccepted(Result result) => result.Ok;

    protected override void Check(byte[] input, Result result)
    {
        Require(result.Ok == (result.Rejection == AdvertRejection.None), $"accepted {result.Ok} with rejection {result.Rejection}");
        Require(result.Ok || result.Advert == default, "a refused advert leaked its fields");
        if (!result.Ok)
        {
            return;
        }

        Require(result.Envelope.Version == input[4], $"accepted version {input[4]} as {result.Envelope.Version}");
        var written = new byte[AdvertCodec.MaximumLength];
        var length = AdvertCodec.Write(result.Advert, result.Envelope, _keys, written);
        if (result.Advert.Weights is not null || result.Advert.Addresses is not null)
        {
            // Known TLVs are written back in the writer's order: the property is the round trip of what was read.
            Require(Decode(written.AsSpan(0, length), out var again, out _, out _)
                && again with { Weights = null } == result.Advert with { Weights = null }
                && (again.Weights ?? []).SequenceEqual(result.Advert.Weights ?? []), $"written back as {System.Convert.ToHexString(written, 0, length)}, read otherwise");
            return;
        }
        // Without known TLVs the writer writes no tail; an accepted tail (unknown, non-critical TLVs) is skipped, so compare without it.
        var expected = input.Length > AdvertCodec.V2Length && input[4] == AdvertCodec.Version2 ? WithoutTail(input) : input;
        Require(written.AsSpan(0, length).SequenceEqual(expected), $"written back as {System.Convert.ToHexString(written, 0, length)}");
    }

    public void Dispose() => _keys.Dispose();

    private static ulong Mask(int count) => count >= 64 ? ulong.MaxValue : (1UL << count) - 1;

    private static byte[] KeyIdBytes(byte[] key)
    {
        var id = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(id, AdvertKeys.IdOf(key));
        return id;
    }

    /// <summary>An advert written and signed (the writer takes any field values; the parser decides).</summary>
    private static byte[] Signed(Advert advert, byte version, uint keyId, uint alsoAccepts)
    {
        using var keys = new AdvertKeys(Key, PreviousKey);
        var bytes = new byte[AdvertCodec.MaximumLength];
        var envelope = new AdvertEnvelope(version, version == AdvertCodec.Version ? keys.CurrentId : keyId, alsoAccepts);
        return bytes[..AdvertCodec.Write(advert, envelope, keys, bytes)];
    }

    /// <summary>A version-2 advert with <paramref name="tail"/> inserted before its HMAC, the tail length set and signed again.</summary>
    private static byte[] WithTail(byte[] advert, byte[] tail)
    {
        byte[] bytes = [.. advert.AsSpan(0, AdvertCodec.V2HeaderLength), .. tail, .. new byte[HMACSHA256.HashSizeInBytes]];
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(76), (ushort)tail.Length);
        Sign(bytes);
        return bytes;
    }

    private static byte[] WithoutTail(byte[] advert)
    {
        byte[] bytes = [.. advert.AsSpan(0, AdvertCodec.V2HeaderLength), .. new byte[HMACSHA256.HashSizeInBytes]];
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(76), 0);
        Sign(bytes);
        return bytes;
    }

    /// <summary>
    /// Signs in place as a sender would: version 1 (100 bytes) over bytes 0..67 with the current key;
    /// version 2 over everything before the last 32 bytes with the key its key id names (the current
    /// key for an id not held). Anything else is left as it is.
    /// </summary>
    private static void Sign(byte[] input)
    {
        var span = input.AsSpan();
        if (input.Length == AdvertCodec.Length && input[4] == AdvertCodec.Version)
        {
            HMACSHA256.HashData(Key, span[..AdvertCodec.SignedLength], span.Slice(AdvertCodec.SignedLength, HMACSHA256.HashSizeInBytes));
        }
        else if (input.Length >= AdvertCodec.V2Length && input[4] == AdvertCodec.Version2)
        {
            var key = BinaryPrimitives.ReadUInt32BigEndian(span[16..]) == AdvertKeys.IdOf(PreviousKey) ? PreviousKey : Key;
            var signed = input.Length - HMACSHA256.HashSizeInBytes;
            HMACSHA256.HashData(key, span[..signed], span[signed..]);
        }
    }

    internal readonly record struct Result(bool Ok, Advert Advert, AdvertEnvelope Envelope, AdvertRejection Rejection);
}
