using System.Security.Cryptography;
using FsCheck;
using FsCheck.Fluent;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Protocol;
using L2Balance.Fuzz.Engine;

namespace L2Balance.Fuzz.Targets.Balancer;

/// <summary>
/// Adverts past the HMAC check: mutated payloads are signed with a test key (<see cref="Finish"/>)
/// so that most reach the decoding of the authenticated fields, and some are left unsigned or cut
/// so that the envelope checks run too. The parse is one call of the codec's public decode entry
/// point (<see cref="Decode"/>); an accepted advert is written back byte for byte.
/// </summary>
internal sealed class AdvertTarget : FuzzTarget<byte[], AdvertTarget.Result>, IDisposable
{
    public const uint ClusterId = 0x4c32_0001;

    /// <summary>The test key: 32 fixed bytes (a cluster key is at least 16).</summary>
    public static readonly byte[] Key = [.. Enumerable.Range(0, 32).Select(i => (byte)(0xa0 + i))];

    private readonly IncrementalHash _hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, Key);

    public override string Name => "advert";

    public override string Product => "l2bal";

    public override string EntryPoint => "AdvertCodec.TryParse (signed with a test key)";

    public override int MaxInputLength => 400;

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        Signed(new Advert(ClusterId, 1, 3, AdvertState.Active, 1_700_000_000_000_000_000, 1, UInt128.MaxValue, 0b111, 0b111, 342, AdvertFlags.Settled)),
        Signed(new Advert(ClusterId, 2, 2, AdvertState.Draining, 1, ulong.MaxValue, 0, 0b10, 0b01, 0, AdvertFlags.None)),
        Signed(new Advert(ClusterId, 64, 64, AdvertState.Leaving, ulong.MaxValue, 0, 12345, ulong.MaxValue, ulong.MaxValue, uint.MaxValue, AdvertFlags.Settled)),
        Signed(new Advert(ClusterId, 1, 1, AdvertState.Unhealthy, 0, 0, 1, 1, 0, 1024, AdvertFlags.None)),
    ];

    /// <summary>Adverts with every field drawn from its valid range (and edges of the invalid one, to be refused).</summary>
    public override Gen<byte[]> Generator { get; } =
        from count in Gen.OneOf(Gen.Choose(1, MembershipView.MaxNodes), Gen.Elements(0, 1, MembershipView.MaxNodes, MembershipView.MaxNodes + 1, ushort.MaxValue))
        from id in Gen.OneOf(Gen.Choose(1, Math.Max(1, count)), Gen.Elements(0, count + 1))
        from state in Gen.Choose(0, 5)
        from flags in Gen.Elements(0, 1, 1, 2, 0x8000)
        from numbers in Gen.Choose(int.MinValue, int.MaxValue).Select(n => (ulong)(uint)n * 0x9e3779b97f4a7c15UL).ArrayOf(6)
        select Signed(new Advert(ClusterId, (ushort)id, (ushort)count, (AdvertState)state, numbers[0], numbers[1], numbers[2],
            numbers[3] & Mask(count), numbers[4] & Mask(count), (uint)numbers[5], (AdvertFlags)flags));

    public override IReadOnlyList<byte[]> Tokens { get; } = [[0x4c, 0x32, 0x42, 0x41], [1], [2], [0, 0, 0, 0], [0xff, 0xff]];

    /// <summary>Signs 9 in 10 inputs with the test key, so the HMAC passes and the decoder proper is reached.</summary>
    public override byte[] Finish(byte[] input, ref FuzzRandom random)
    {
        if (input.Length >= AdvertCodec.Length && random.Percent(90))
        {
            HMACSHA256.HashData(Key, input.AsSpan(0, AdvertCodec.SignedLength), input.AsSpan(AdvertCodec.SignedLength, HMACSHA256.HashSizeInBytes));
        }

        return input;
    }

    /// <summary>The one call of the codec: re-point here when its decode entry point changes.</summary>
    public bool Decode(ReadOnlySpan<byte> datagram, out Advert advert, out AdvertRejection rejection) =>
        AdvertCodec.TryParse(datagram, ClusterId, _hmac, out advert, out rejection);

    protected override byte[] Convert(byte[] input, ref FuzzRandom random) => input;

    protected override Result Parse(byte[] input)
    {
        bool ok = Decode(input, out var advert, out var rejection);
        return new Result(ok, advert, rejection);
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

        var written = new byte[AdvertCodec.Length];
        AdvertCodec.Write(result.Advert, Key, written);
        Require(written.AsSpan().SequenceEqual(input), $"written back as {System.Convert.ToHexString(written)}");
    }

    public void Dispose() => _hmac.Dispose();

    private static ulong Mask(int count) => count >= 64 ? ulong.MaxValue : (1UL << count) - 1;

    /// <summary>An advert written and signed (the writer takes any field values; the parser decides).</summary>
    private static byte[] Signed(Advert advert)
    {
        var bytes = new byte[AdvertCodec.Length];
        AdvertCodec.Write(advert, Key, bytes);
        return bytes;
    }

    internal readonly record struct Result(bool Ok, Advert Advert, AdvertRejection Rejection);
}
