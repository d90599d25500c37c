using System.Buffers.Binary;
using System.Security.Cryptography;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Protocol;

/// <summary>
/// Advert version 2 (docs/design.md#advert-v2): key ids in clear, the TLV tail, both versions
/// read by one node, and the previous key of a key change (docs/design.md#key-rollover).
/// </summary>
public class AdvertCodecV2Tests
{
    private static readonly byte[] Key = AdvertCodecTests.Key;
    private static readonly byte[] NewKey = [.. Enumerable.Range(101, 32).Select(i => (byte)i)];
    private static readonly Advert Sample = AdvertCodecTests.Sample;

    private static byte[] EncodeV2(Advert advert, byte[] signWith, byte[]? previous = null, uint? keyId = null, uint alsoAccepts = 0)
    {
        using var keys = new AdvertKeys(signWith, previous);
        var buffer = new byte[AdvertCodec.V2Length];
        Assert.Equal(AdvertCodec.V2Length, AdvertCodec.Write(advert, new AdvertEnvelope(2, keyId ?? keys.CurrentId, alsoAccepts), keys, buffer));
        return buffer;
    }

    private static (AdvertRejection Reason, Advert Advert, AdvertEnvelope Envelope) Parse(ReadOnlySpan<byte> bytes, byte[]? key = null, byte[]? previous = null, byte highest = 2)
    {
        using var keys = new AdvertKeys(key ?? Key, previous);
        bool ok = AdvertCodec.TryParse(bytes, 10, keys, highest, out var advert, out var envelope, out var reason);
        Assert.Equal(ok, reason == AdvertRejection.None);
        return (reason, advert, envelope);
    }

    /// <summary>A version-2 advert with <paramref name="tail"/> and the reserved half-word set as given, signed anew with <see cref="Key"/>.</summary>
    private static byte[] WithTail(byte[] tail, ushort reserved = 0)
    {
        var b = EncodeV2(Sample, Key);
        var frame = new byte[AdvertCodec.V2Length + tail.Length];
        b.AsSpan(0, AdvertCodec.V2HeaderLength).CopyTo(frame);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(76), (ushort)tail.Length);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(78), reserved);
        tail.CopyTo(frame, AdvertCodec.V2HeaderLength);
        var signed = AdvertCodec.V2HeaderLength + tail.Length;
        HMACSHA256.HashData(Key, frame.AsSpan(0, signed), frame.AsSpan(signed));
        return frame;
    }

    [Fact]
    public void V2_Written_RoundTripsWithItsKeyIds()
    {
        var keyId = AdvertKeys.IdOf(Key);
        var (reason, advert, envelope) = Parse(EncodeV2(Sample, Key, alsoAccepts: 0x01020304));
        Assert.Equal(AdvertRejection.None, reason);
        Assert.Equal(Sample, advert);
        Assert.Equal(new AdvertEnvelope(2, keyId, 0x01020304), envelope);
    }

    [Fact]
    public void V2_Written_HasTheDocumentedLayout()
    {
        var b = EncodeV2(Sample, Key, alsoAccepts: 7);
        Assert.Equal(112, b.Length);
        Assert.Equal("L2BA"u8.ToArray(), b[..4]);
        Assert.Equal(2, b[4]);
        Assert.Equal((byte)AdvertState.Active, b[5]);
        Assert.Equal(10u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(8)));
        Assert.Equal(2, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(12)));
        Assert.Equal(AdvertKeys.IdOf(Key), BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(16)));
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(20)));
        Assert.Equal(Sample.Incarnation, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(24)));
        Assert.Equal(42UL, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(32)));
        Assert.Equal(AdvertCodecTests.Digest, BinaryPrimitives.ReadUInt128BigEndian(b.AsSpan(40)));
        Assert.Equal(0b111UL, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(56)));
        Assert.Equal(0b011UL, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(64)));
        Assert.Equal(1365u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(72)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(76)));
        Assert.Equal(HMACSHA256.HashData(Key, b.AsSpan(0, 80)), b[80..]);
    }

    [Fact]
    public void KeyId_OfAKey_IsTheFirstFourBytesOfItsLabelledHash()
    {
        var expected = BinaryPrimitives.ReadUInt32BigEndian(SHA256.HashData([.. "l2bal advert key id\0"u8.ToArray(), .. Key]));
        Assert.Equal(expected, AdvertKeys.IdOf(Key));
        Assert.NotEqual(AdvertKeys.IdOf(Key), AdvertKeys.IdOf(NewKey));
        Assert.Equal(8, AdvertKeys.Format(AdvertKeys.IdOf(Key)).Length);
    }

    [Fact]
    public void V2_KeyIdNotHeld_IsUnknownKeyAndNamesTheId()
    {
        var (reason, advert, envelope) = Parse(EncodeV2(Sample, NewKey));
        Assert.Equal(AdvertRejection.UnknownKey, reason);
        Assert.Equal(default, advert);
        Assert.Equal(AdvertKeys.IdOf(NewKey), envelope.KeyId);
    }

    [Fact]
    public void V2_ForgedWithAHeldKeyId_IsBadHmac()
    {
        // A host without the key can copy our key id (it is in clear): the HMAC still decides.
        var forged = EncodeV2(Sample, NewKey);
        BinaryPrimitives.WriteUInt32BigEndian(forged.AsSpan(16), AdvertKeys.IdOf(Key));
        Assert.Equal(AdvertRejection.BadHmac, Parse(forged).Reason);
    }

    [Fact]
    public void KeyChange_BothVersionsUnderEitherKey_AreAcceptedAndNamed()
    {
        var oldId = AdvertKeys.IdOf(Key);
        var newId = AdvertKeys.IdOf(NewKey);
        // A node holding NewKey (current) and Key (previous) reads peers on either key.
        Assert.Equal(new AdvertEnvelope(2, oldId, 0), Parse(EncodeV2(Sample, Key), NewKey, Key).Envelope);
        Assert.Equal(new AdvertEnvelope(2, newId, 0), Parse(EncodeV2(Sample, NewKey), NewKey, Key).Envelope);
        var (reason, _, envelope) = Parse(AdvertCodecTests.Encode(Sample, Key), NewKey, Key);
        Assert.Equal(AdvertRejection.None, reason);
        Assert.Equal(new AdvertEnvelope(1, oldId, 0), envelope);
        Assert.Equal(new AdvertEnvelope(1, newId, 0), Parse(AdvertCodecTests.Encode(Sample, NewKey), NewKey, Key).Envelope);
        // Without the previous key the old one is foreign.
        Assert.Equal(AdvertRejection.UnknownKey, Parse(EncodeV2(Sample, Key), NewKey).Reason);
        Assert.Equal(AdvertRejection.BadHmac, Parse(AdvertCodecTests.Encode(Sample, Key), NewKey).Reason);
    }

    [Fact]
    public void V2_NodePinnedToVersion1_IsBadVersionAsInAVersion1Daemon()
    {
        Assert.Equal(AdvertRejection.BadVersion, Parse(EncodeV2(Sample, Key), highest: 1).Reason);
        Assert.Equal(AdvertRejection.None, Parse(AdvertCodecTests.Encode(Sample), highest: 1).Reason);
    }

    [Fact]
    public void V2_StrictPrefixOrLongerFrame_IsTruncatedOrBadLength()
    {
        var b = EncodeV2(Sample, Key);
        for (int n = 0; n < b.Length; n++)
        {
            var reason = Parse(b.AsSpan(0, n)).Reason;
            Assert.True(reason == AdvertRejection.Truncated, $"prefix of {n} bytes: {reason}");
        }
        Assert.Equal(AdvertRejection.BadLength, Parse([.. b, 0]).Reason);
    }

    [Fact]
    public void V2_AnyFlippedBit_IsRejected()
    {
        var b = EncodeV2(Sample, Key);
        for (int i = 0; i < b.Length; i++)
        {
            for (int bit = 0; bit < 8; bit++)
            {
                var copy = (byte[])b.Clone();
                copy[i] ^= (byte)(1 << bit);
                var reason = Parse(copy).Reason;
                var expected = i switch
                {
                    < 4 => AdvertRejection.BadMagic,
                    4 => copy[4] == 1 ? AdvertRejection.BadLength : AdvertRejection.BadVersion,
                    >= 8 and < 12 => AdvertRejection.OtherCluster,
                    >= 16 and < 20 => AdvertRejection.UnknownKey,
                    76 or 77 => AdvertRejection.Truncated,
                    _ => AdvertRejection.BadHmac,
                };
                Assert.True(expected == reason, $"byte {i} bit {bit}: {reason}, expected {expected}");
            }
        }
    }

    [Fact]
    public void V2_Tail_SkipsUnknownTypesAndRefusesCriticalOrBrokenOnes()
    {
        Assert.Equal(AdvertRejection.None, Parse(WithTail([0x01, 0x02, 0xaa, 0xbb, 0x7f, 0x00])).Reason);
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x81, 0x00])).Reason);
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x01, 0x05, 0xaa])).Reason);
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x01])).Reason);
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([], reserved: 1)).Reason);
    }

    [Fact]
    public void V2_RandomGarbageWithAValidHeader_NeverPasses()
    {
        var rng = new Random(14);
        var b = EncodeV2(Sample, Key);
        var buffer = new byte[160];
        using var keys = new AdvertKeys(Key);
        for (int i = 0; i < 20_000; i++)
        {
            int n = rng.Next(buffer.Length + 1);
            rng.NextBytes(buffer);
            // Half reach the HMAC: magic, version, cluster id and key id as a peer's.
            b.AsSpan(0, Math.Min(n, i % 2 == 0 ? 20 : 12)).CopyTo(buffer);
            Assert.False(AdvertCodec.TryParse(buffer.AsSpan(0, n), 10, keys, 2, out _, out _, out _));
        }
    }

    [Fact]
    public void V2_Weights_RoundTripAsACriticalTlvAndDefaultWeightsSendNone()
    {
        using var keys = new AdvertKeys(Key, null);
        var buffer = new byte[AdvertCodec.V2MaxLength];
        var length = AdvertCodec.Write(Sample with { Weights = [100, 200, 1000] }, new AdvertEnvelope(2, keys.CurrentId, 0), keys, buffer);
        Assert.Equal(AdvertCodec.V2Length + 8, length);
        Assert.Equal([AdvertCodec.WeightsTlv, 6, 0, 100, 0, 200, 0x03, 0xe8], buffer[80..88]);
        var (reason, advert, _) = Parse(buffer.AsSpan(0, length));
        Assert.Equal(AdvertRejection.None, reason);
        Assert.Equal([100, 200, 1000], advert.Weights);
        Assert.Equal(Sample, advert with { Weights = null });
        // Without weights: byte for byte the advert of a daemon that knows none.
        Assert.Equal(EncodeV2(Sample, Key), buffer.AsSpan(0, AdvertCodec.Write(Sample, new AdvertEnvelope(2, keys.CurrentId, 0), keys, buffer)).ToArray());
    }

    [Fact]
    public void V2_MalformedWeights_AreRefused()
    {
        Assert.Equal(AdvertRejection.None, Parse(WithTail([0x81, 6, 0, 1, 0, 2, 0, 3])).Reason);
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x81, 4, 0, 1, 0, 2])).Reason); // two weights for three nodes
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x81, 6, 0, 0, 0, 2, 0, 3])).Reason); // weight 0
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x81, 6, 0x03, 0xe9, 0, 2, 0, 3])).Reason); // 1001
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x81, 6, 0, 1, 0, 2, 0, 3, 0x81, 6, 0, 1, 0, 2, 0, 3])).Reason); // twice
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x81, 6, 0, 1, 0, 2, 0])).Reason); // cut short
    }

    [Fact]
    public void V1_WithWeights_IsNotWritten()
    {
        Assert.Throws<ArgumentException>(() => AdvertCodec.Write(Sample with { Weights = [100, 200, 100] }, Key, new byte[AdvertCodec.Length]));
    }

    [Fact]
    public void V2_NodeAddresses_RoundTripAfterTheWeightsAsANonCriticalTlv()
    {
        using var keys = new AdvertKeys(Key, null);
        var buffer = new byte[AdvertCodec.V2MaxLength];
        var both = new NodeAddresses(System.Net.IPAddress.Parse("198.18.0.2"), System.Net.IPAddress.Parse("fdc6:1200::2"), 1081);
        var length = AdvertCodec.Write(Sample with { Weights = [100, 200, 1000], Addresses = both }, new AdvertEnvelope(2, keys.CurrentId, 0), keys, buffer);

        Assert.Equal(AdvertCodec.V2Length + 8 + 24, length);
        Assert.Equal([AdvertCodec.NodeAddressesTlv, 22, 0x04, 0x39, 198, 18, 0, 2, 0xfd, 0xc6, 0x12], buffer[88..99]);
        var (reason, advert, _) = Parse(buffer.AsSpan(0, length));
        Assert.Equal(AdvertRejection.None, reason);
        Assert.Equal(both, advert.Addresses);
        Assert.Equal(new System.Net.IPEndPoint(both.Ipv4!, 1081), advert.Addresses!.Endpoint);
        Assert.True((AdvertCodec.NodeAddressesTlv & AdvertCodec.CriticalTlv) == 0);
    }

    [Theory]
    [InlineData(new byte[] { 0x02, 6, 0x04, 0x39, 198, 18, 0, 2 }, "198.18.0.2", null)]
    [InlineData(new byte[] { 0x02, 18, 0x04, 0x39, 0xfd, 0xc6, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 }, null, "fdc6:1200::2")]
    public void V2_NodeAddressesOfOneFamily_AreReadByLength(byte[] tail, string? ipv4, string? ipv6)
    {
        var (reason, advert, _) = Parse(WithTail(tail));

        Assert.Equal(AdvertRejection.None, reason);
        Assert.Equal(ipv4, advert.Addresses?.Ipv4?.ToString());
        Assert.Equal(ipv6, advert.Addresses?.Ipv6?.ToString());
        Assert.Equal(1081, advert.Addresses?.Port);
    }

    [Fact]
    public void V2_MalformedNodeAddresses_AreRefused()
    {
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x02, 5, 0x04, 0x39, 198, 18, 0])).Reason); // no length of this version
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x02, 6, 0, 0, 198, 18, 0, 2])).Reason); // port 0
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x02, 6, 0x04, 0x39, 0, 0, 0, 0])).Reason); // 0.0.0.0
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x02, 6, 0x04, 0x39, 198, 18, 0, 2, 0x02, 6, 0x04, 0x39, 198, 18, 0, 3])).Reason); // twice
        Assert.Equal(AdvertRejection.Malformed, Parse(WithTail([0x02, 6, 0x04, 0x39, 198, 18, 0])).Reason); // cut short
    }

    [Fact]
    public void V2_WithoutNodeAddresses_IsByteForByteTheAdvertBeforeThem()
    {
        using var keys = new AdvertKeys(Key, null);
        var buffer = new byte[AdvertCodec.V2MaxLength];

        Assert.Equal(EncodeV2(Sample, Key), buffer.AsSpan(0, AdvertCodec.Write(Sample with { Addresses = null }, new AdvertEnvelope(2, keys.CurrentId, 0), keys, buffer)).ToArray());
        Assert.Throws<ArgumentException>(() => AdvertCodec.Write(Sample with { Addresses = new NodeAddresses(System.Net.IPAddress.Parse("198.18.0.2"), null, 1081) }, Key, new byte[AdvertCodec.Length]));
        Assert.Throws<ArgumentException>(() => AdvertCodec.Write(Sample with { Addresses = new NodeAddresses(null, null, 1081) }, new AdvertEnvelope(2, keys.CurrentId, 0), keys, buffer));
    }
}
