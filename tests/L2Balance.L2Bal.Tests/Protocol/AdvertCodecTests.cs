using System.Buffers.Binary;
using System.Net;
using System.Security.Cryptography;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Protocol;

public class AdvertCodecTests
{
    internal static readonly byte[] Key = [.. Enumerable.Range(1, 32).Select(i => (byte)i)];
    internal static readonly UInt128 Digest = AdvertConfigDigest.Compute(IPAddress.Parse("198.18.0.10"), 4096, 0x5eed, 3, 10);

    internal static readonly Advert Sample = new(
        ClusterId: 10, NodeId: 2, NodeCount: 3, State: AdvertState.Active,
        Incarnation: 1_764_000_000_000_000_000, Sequence: 42, ConfigDigest: Digest,
        AliveView: 0b111, ActiveView: 0b011, HeldCount: 1365, Flags: AdvertFlags.Settled);

    internal static byte[] Encode(Advert advert, byte[]? key = null)
    {
        var buffer = new byte[AdvertCodec.Length];
        Assert.Equal(AdvertCodec.Length, AdvertCodec.Write(advert, key ?? Key, buffer));
        return buffer;
    }

    private static AdvertRejection Parse(ReadOnlySpan<byte> bytes, uint cluster = 10, byte[]? key = null)
    {
        bool ok = AdvertCodec.TryParse(bytes, cluster, key ?? Key, out var advert, out var reason);
        Assert.Equal(ok, reason == AdvertRejection.None);
        if (!ok)
        {
            Assert.Equal(default, advert);
        }

        return reason;
    }

    /// <summary>The daemon's reusable HMAC signs exactly as the one-shot form, advert after advert, and verifies (and rejects) the same.</summary>
    [Fact]
    public void Hmac_Reused_SignsAndVerifiesAsTheOneShotForm()
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, Key);
        for (ulong sequence = 1; sequence <= 5; sequence++)
        {
            var advert = Sample with { Sequence = sequence };
            var reused = new byte[AdvertCodec.Length];
            AdvertCodec.Write(advert, hmac, reused);
            Assert.Equal(Encode(advert), reused);
            Assert.True(AdvertCodec.TryParse(reused, 10, hmac, out var parsed, out _));
            Assert.Equal(advert, parsed);
        }
        var forged = Encode(Sample, [.. Enumerable.Repeat((byte)7, 32)]);
        Assert.False(AdvertCodec.TryParse(forged, 10, hmac, out _, out var reason));
        Assert.Equal(AdvertRejection.BadHmac, reason);
        // A rejection leaves the HMAC reset for the next advert.
        Assert.True(AdvertCodec.TryParse(Encode(Sample), 10, hmac, out _, out _));
    }

    [Fact]
    public void MacEquals_AnyFlippedBitOrOtherLength_IsUnequalAndOnlyTheSameBytesAreEqual()
    {
        var mac = HMACSHA256.HashData(Key, "advert"u8);
        Assert.True(AdvertCodec.MacEquals(mac, (byte[])mac.Clone()));
        for (var bit = 0; bit < mac.Length * 8; bit++)
        {
            var other = (byte[])mac.Clone();
            other[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.False(AdvertCodec.MacEquals(mac, other), $"bit {bit} flipped");
            Assert.False(AdvertCodec.MacEquals(other, mac), $"bit {bit} flipped");
        }
        Assert.False(AdvertCodec.MacEquals(mac, mac.AsSpan(0, 31)));
        Assert.False(AdvertCodec.MacEquals(mac.AsSpan(0, 31), mac.AsSpan(0, 31)));
        Assert.False(AdvertCodec.MacEquals([.. mac, 0], [.. mac, 0]));
    }

    [Fact]
    public void Advert_Written_RoundTrips()
    {
        Assert.True(AdvertCodec.TryParse(Encode(Sample), 10, Key, out var parsed, out var reason));
        Assert.Equal(AdvertRejection.None, reason);
        Assert.Equal(Sample, parsed);
    }

    [Fact]
    public void Advert_Written_HasTheDocumentedLayout()
    {
        var b = Encode(Sample);
        Assert.Equal("L2BA"u8.ToArray(), b[..4]);
        Assert.Equal(1, b[4]);
        Assert.Equal((byte)AdvertState.Active, b[5]);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(6)));
        Assert.Equal(10u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(8)));
        Assert.Equal(2, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(12)));
        Assert.Equal(3, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(14)));
        Assert.Equal(Sample.Incarnation, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(16)));
        Assert.Equal(42UL, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(24)));
        Assert.Equal(Digest, BinaryPrimitives.ReadUInt128BigEndian(b.AsSpan(32)));
        Assert.Equal(0b111UL, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(48)));
        Assert.Equal(0b011UL, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(56)));
        Assert.Equal(1365u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(64)));
        Assert.Equal(HMACSHA256.HashData(Key, b.AsSpan(0, 68)), b[68..]);
    }

    [Fact]
    public void Parse_StrictPrefixOrLongerFrame_IsTruncatedOrBadLength()
    {
        var b = Encode(Sample);
        for (int n = 0; n < b.Length; n++)
        {
            Assert.Equal(AdvertRejection.Truncated, Parse(b.AsSpan(0, n)));
        }

        Assert.Equal(AdvertRejection.BadLength, Parse([.. b, 0]));
    }

    [Fact]
    public void Parse_SeveralEnvelopeFaults_ReportsTheFirstInOrder()
    {
        var b = Encode(Sample);
        var badMagic = (byte[])b.Clone();
        badMagic[0] ^= 1;
        Assert.Equal(AdvertRejection.BadMagic, Parse(badMagic));

        var badVersion = (byte[])b.Clone();
        badVersion[4] = 3; // 2 is spoken since issue 14 (AdvertCodecV2Tests)
        Assert.Equal(AdvertRejection.BadVersion, Parse(badVersion));
        Assert.Equal(AdvertRejection.BadVersion, Parse(badVersion.AsSpan(0, 20))); // version before length

        Assert.Equal(AdvertRejection.OtherCluster, Parse(b, cluster: 11));
        Assert.Equal(AdvertRejection.OtherCluster, Parse(Encode(Sample, new byte[32]), cluster: 11)); // before HMAC

        var otherKey = (byte[])Key.Clone();
        otherKey[31] ^= 0x80;
        Assert.Equal(AdvertRejection.BadHmac, Parse(b, key: otherKey));
    }

    [Fact]
    public void Advert_AnyFlippedBit_IsRejected()
    {
        var b = Encode(Sample);
        for (int i = 0; i < b.Length; i++)
        {
            for (int bit = 0; bit < 8; bit++)
            {
                var copy = (byte[])b.Clone();
                copy[i] ^= (byte)(1 << bit);
                var reason = Parse(copy);
                var expected = i switch
                {
                    < 4 => AdvertRejection.BadMagic,
                    4 => AdvertRejection.BadVersion,
                    >= 8 and < 12 => AdvertRejection.OtherCluster,
                    _ => AdvertRejection.BadHmac,
                };
                Assert.Equal(expected, reason);
            }
        }
    }

    [Theory]
    [InlineData(0, 3)]
    [InlineData(4, 3)]
    [InlineData(65535, 3)]
    public void Advert_AuthenticatedWithBadNodeId_IsRejected(int id, int count)
    {
        Assert.Equal(AdvertRejection.BadNodeId, Parse(Encode(Sample with { NodeId = (ushort)id, NodeCount = (ushort)count })));
    }

    [Fact]
    public void Advert_AuthenticatedWithMalformedFields_IsRejected()
    {
        Assert.Equal(AdvertRejection.Malformed, Parse(Encode(Sample with { State = 0 })));
        Assert.Equal(AdvertRejection.Malformed, Parse(Encode(Sample with { State = (AdvertState)5 })));
        Assert.Equal(AdvertRejection.Malformed, Parse(Encode(Sample with { Flags = (AdvertFlags)2 })));
        Assert.Equal(AdvertRejection.Malformed, Parse(Encode(Sample with { NodeCount = 65 })));
        Assert.Equal(AdvertRejection.Malformed, Parse(Encode(Sample with { AliveView = 0b1000 })));
        Assert.Equal(AdvertRejection.Malformed, Parse(Encode(Sample with { ActiveView = 0b1000 })));
        Assert.Equal(AdvertRejection.None, Parse(Encode(Sample with { NodeCount = 64, NodeId = 64, AliveView = ulong.MaxValue, ActiveView = ulong.MaxValue })));
        foreach (var state in Enum.GetValues<AdvertState>())
        {
            Assert.Equal(AdvertRejection.None, Parse(Encode(Sample with { State = state })));
        }
    }

    [Fact]
    public void Key_TooShort_IsRefused()
    {
        Assert.Throws<ArgumentException>(() => AdvertCodec.Write(Sample, new byte[15], new byte[100]));
        Assert.Throws<ArgumentException>(() => AdvertCodec.TryParse(new byte[100], 10, new byte[15], out _, out _));
        Assert.Throws<ArgumentException>(() => AdvertCodec.Write(Sample, Key, new byte[99]));
    }

    [Fact]
    public void Advert_RandomGarbage_NeverPasses()
    {
        var rng = new Random(5798);
        var b = Encode(Sample);
        var buffer = new byte[128];
        for (int i = 0; i < 20_000; i++)
        {
            int n = rng.Next(buffer.Length + 1);
            rng.NextBytes(buffer);
            if (i % 2 == 0)
            {
                b.AsSpan(0, Math.Min(n, 12)).CopyTo(buffer); // reach the HMAC check
            }

            Assert.NotEqual(AdvertRejection.None, Parse(buffer.AsSpan(0, n)));
        }
    }

    [Fact]
    public void ConfigDigest_AnyInputChanged_Differs()
    {
        var vip = IPAddress.Parse("198.18.0.10");
        var all = new HashSet<UInt128>
        {
            Digest,
            AdvertConfigDigest.Compute(IPAddress.Parse("198.18.0.11"), 4096, 0x5eed, 3, 10),
            AdvertConfigDigest.Compute(vip, 1024, 0x5eed, 3, 10),
            AdvertConfigDigest.Compute(vip, 4096, 0x5eee, 3, 10),
            AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 4, 10),
            AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 3, 11),
        };
        Assert.Equal(6, all.Count);
        Assert.Equal(Digest, AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 3, 10));
        Assert.Throws<ArgumentException>(() => AdvertConfigDigest.Compute(IPAddress.IPv6Loopback, 4096, 0, 3, 10));
    }

    [Fact]
    public void ConfigDigest_NoAffinityRulesOrOnlySingle_IsTheDigestOfOlderDaemons()
    {
        // SHA-256 of VIP ‖ B ‖ seed ‖ N ‖ cluster id, as daemons without --affinity compute it.
        byte[] input = [198, 18, 0, 10, 0, 0, 0x10, 0, 0, 0, 0x5e, 0xed, 0, 3, 0, 0, 0, 10];
        var old = BinaryPrimitives.ReadUInt128BigEndian(SHA256.HashData(input));
        var vip = IPAddress.Parse("198.18.0.10");

        Assert.Equal(old, Digest);
        Assert.Equal(old, AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 3, 10, []));
        Assert.Equal(old, AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 3, 10, [new AffinityRule("udp", 53, AffinityMode.Single)]));
    }

    [Fact]
    public void ConfigDigest_AffinityRules_DifferByRuleButNotByOrder()
    {
        var vip = IPAddress.Parse("198.18.0.10");
        AffinityRule dns = new("udp", 53, AffinityMode.None), web = new("tcp", 80, AffinityMode.Network);
        var all = new HashSet<UInt128>
        {
            Digest,
            AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 3, 10, [dns]),
            AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 3, 10, [dns with { Mode = AffinityMode.Network }]),
            AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 3, 10, [dns with { Protocol = "tcp" }]),
            AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 3, 10, [dns with { Port = 54 }]),
            AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 3, 10, [dns, web]),
        };

        Assert.Equal(6, all.Count);
        Assert.Equal(AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 3, 10, [dns, web]), AdvertConfigDigest.Compute(vip, 4096, 0x5eed, 3, 10, [web, dns]));
    }
}

public class AdvertVerifierTests
{
    private static AdvertVerifier Node1() => new(AdvertCodecTests.Key, 10, 1, AdvertCodecTests.Digest);

    private static AdvertRejection Accept(AdvertVerifier verifier, Advert advert, byte[]? key = null)
    {
        bool ok = verifier.TryAccept(AdvertCodecTests.Encode(advert, key), out var parsed, out var reason);
        Assert.Equal(ok, reason == AdvertRejection.None);
        // Accepted and authentic-but-misconfigured adverts come back whole; everything else as default.
        var handedBack = ok || reason is AdvertRejection.FromSelf or AdvertRejection.ConfigMismatch;
        Assert.Equal(handedBack ? advert : default, parsed);
        return reason;
    }

    [Fact]
    public void Verifier_FreshOrReplayedAdvert_IsAcceptedOrRefused()
    {
        using var v = Node1();
        var a = AdvertCodecTests.Sample;
        Assert.Equal(AdvertRejection.None, Accept(v, a));
        Assert.Equal(AdvertRejection.Replayed, Accept(v, a));
        Assert.Equal(AdvertRejection.Replayed, Accept(v, a with { Sequence = 41 }));
        Assert.Equal(AdvertRejection.None, Accept(v, a with { Sequence = 43 }));
        Assert.Equal(AdvertRejection.Replayed, Accept(v, a with { Incarnation = a.Incarnation - 1, Sequence = 1000 }));
        Assert.Equal(AdvertRejection.None, Accept(v, a with { Incarnation = a.Incarnation + 1, Sequence = 0 })); // restarted daemon
        Assert.Equal(AdvertRejection.Replayed, Accept(v, a with { Sequence = 44 })); // the old run is over
        Assert.Equal(AdvertRejection.None, Accept(v, a with { NodeId = 3, Sequence = 1 })); // per peer
    }

    [Fact]
    public void Verifier_OwnIdOrOtherConfiguration_IsRefused()
    {
        using var v = Node1();
        Assert.Equal(AdvertRejection.FromSelf, Accept(v, AdvertCodecTests.Sample with { NodeId = 1 }));
        Assert.Equal(AdvertRejection.ConfigMismatch, Accept(v, AdvertCodecTests.Sample with { ConfigDigest = 1 }));
    }

    [Fact]
    public void Verifier_AuthenticMisconfiguredAdvert_IsHandedBackUnlikeAForgedOne()
    {
        using var v = Node1();
        var sameId = AdvertCodecTests.Sample with { NodeId = 1, Incarnation = 5 };
        var bytes = new byte[AdvertCodec.Length];
        AdvertCodec.Write(sameId, AdvertCodecTests.Key, bytes);
        Assert.False(v.TryAccept(bytes, out var advert, out var reason));
        Assert.Equal((AdvertRejection.FromSelf, 5ul, (ushort)1), (reason, advert.Incarnation, advert.NodeId));

        var otherSettings = AdvertCodecTests.Sample with { ConfigDigest = 9, NodeCount = 4 };
        AdvertCodec.Write(otherSettings, AdvertCodecTests.Key, bytes);
        Assert.False(v.TryAccept(bytes, out advert, out reason));
        Assert.Equal((AdvertRejection.ConfigMismatch, (ushort)4), (reason, advert.NodeCount));

        AdvertCodec.Write(otherSettings with { Sequence = 99 }, new byte[32], bytes);
        Assert.False(v.TryAccept(bytes, out advert, out reason));
        Assert.Equal((AdvertRejection.BadHmac, default(Advert)), (reason, advert));
    }

    [Fact]
    public void ReplayState_UnauthenticatedAdvert_DoesNotAdvance()
    {
        using var v = Node1();
        var forged = AdvertCodecTests.Sample with { Sequence = ulong.MaxValue };
        Assert.Equal(AdvertRejection.BadHmac, Accept(v, forged, new byte[32]));
        Assert.Equal(AdvertRejection.None, Accept(v, AdvertCodecTests.Sample));
    }

    [Fact]
    public void Verifier_ReplayWithOtherConfiguration_IsRefusedAsReplay()
    {
        using var v = Node1();
        var a = AdvertCodecTests.Sample with { ConfigDigest = 7 };
        Assert.Equal(AdvertRejection.ConfigMismatch, Accept(v, a));
        Assert.Equal(AdvertRejection.Replayed, Accept(v, a));
    }

    [Fact]
    public void Verifier_Disposed_RefusesWork()
    {
        var v = Node1();
        v.Dispose();
        Assert.Throws<ObjectDisposedException>(() => v.TryAccept(new byte[100], out _, out _));
        Assert.Throws<ArgumentException>(() => new AdvertVerifier(new byte[8], 10, 1, 0));
    }
}

public class ReplayGuardTests
{
    [Fact]
    public void ReplayWindow_SeveralPeers_AreTrackedSeparately()
    {
        var g = new ReplayGuard();
        Assert.Null(g.LastAccepted(2));
        Assert.True(g.TryAccept(2, 5, 0));
        Assert.True(g.TryAccept(3, 1, 9));
        Assert.False(g.TryAccept(2, 5, 0));
        Assert.False(g.TryAccept(2, 4, 100));
        Assert.True(g.TryAccept(2, 5, 1));
        Assert.True(g.TryAccept(2, 6, 0));
        Assert.False(g.TryAccept(2, 5, 2));
        Assert.Equal((6UL, 0UL), g.LastAccepted(2));
        Assert.Equal((1UL, 9UL), g.LastAccepted(3));
    }

    [Fact]
    public void ReplayWindow_AnyPair_IsAcceptedOnlyWhenStrictlyIncreasing()
    {
        var rng = new Random(1);
        var g = new ReplayGuard();
        (ulong Inc, ulong Seq)? last = null;
        for (int i = 0; i < 10_000; i++)
        {
            ulong inc = (ulong)rng.Next(0, 5), seq = (ulong)rng.Next(0, 50);
            bool fresh = last is null || inc > last.Value.Inc || (inc == last.Value.Inc && seq > last.Value.Seq);
            Assert.Equal(fresh, g.TryAccept(7, inc, seq));
            if (fresh)
            {
                last = (inc, seq);
            }
        }
    }
}
