using System.Buffers;
using L2Balance.Proxy.Migration;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Migration;

public sealed class MigrationRecordsTests
{
    private static readonly byte[] ChannelKey = MigrationRecords.DeriveChannelKey("cluster key of the tests"u8);
    private static readonly byte[] InitiatorNonce = [.. Enumerable.Repeat((byte)1, MigrationRecords.NonceLength)];
    private static readonly byte[] ResponderNonce = [.. Enumerable.Repeat((byte)2, MigrationRecords.NonceLength)];

    private static (MigrationRecords Sender, MigrationRecords Receiver) Pair(byte[]? receiverKey = null, byte[]? receiverResponderNonce = null) =>
        (new MigrationRecords(ChannelKey, InitiatorNonce, ResponderNonce, initiator: true),
         new MigrationRecords(receiverKey ?? ChannelKey, InitiatorNonce, receiverResponderNonce ?? ResponderNonce, initiator: false));

    private static byte[] Seal(MigrationRecords records, byte[] plaintext)
    {
        var writer = new ArrayBufferWriter<byte>();
        records.Seal(plaintext, writer);
        return writer.WrittenSpan.ToArray();
    }

    private static MigrationRecordRejection Open(MigrationRecords records, byte[] record, out byte[] plaintext)
    {
        var status = records.TryOpen(record, out plaintext, out int consumed, out var reason);
        Assert.Equal(status == ParseStatus.Ok ? record.Length : 0, consumed);
        Assert.Equal(status == ParseStatus.Ok, reason == MigrationRecordRejection.None);
        return reason;
    }

    [Fact]
    public void Records_InOrder_OpenToTheirPlaintext()
    {
        var (sender, receiver) = Pair();
        for (int i = 0; i < 3; i++)
        {
            byte[] payload = [.. Enumerable.Range(0, 100 * i).Select(b => (byte)b)];
            var record = Seal(sender, payload);
            Assert.Equal(MigrationRecords.HeaderLength + payload.Length + MigrationRecords.TagLength, record.Length);
            Assert.Equal(MigrationRecordRejection.None, Open(receiver, record, out var opened));
            Assert.Equal(payload, opened);
        }
    }

    [Fact]
    public void Record_Sealed_DoesNotContainThePlaintext()
    {
        var (sender, _) = Pair();
        var payload = "users' bytes users' bytes"u8.ToArray();
        var record = Seal(sender, payload);
        Assert.Equal(-1, record.AsSpan().IndexOf(payload.AsSpan(0, 8)));
    }

    [Fact]
    public void Prefix_OfARecord_NeedsMoreData()
    {
        var (sender, receiver) = Pair();
        var record = Seal(sender, [1, 2, 3]);
        for (int length = 0; length < record.Length; length++)
        {
            Assert.Equal(ParseStatus.NeedMoreData, receiver.TryOpen(record.AsSpan(0, length), out _, out int consumed, out _));
            Assert.Equal(0, consumed);
        }

        Assert.Equal(MigrationRecordRejection.None, Open(receiver, record, out _));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(14)]
    [InlineData(-1)]
    public void Record_AnyBitFlipped_IsRefused(int offset)
    {
        var (sender, receiver) = Pair();
        var record = Seal(sender, [1, 2, 3]);
        record[offset < 0 ? record.Length - 1 : offset] ^= 0x01;
        Assert.NotEqual(MigrationRecordRejection.None, Open(receiver, record, out var plaintext));
        Assert.Empty(plaintext);
    }

    [Fact]
    public void Length_MadeLonger_WaitsForTheBytesThenIsRefused()
    {
        var (sender, receiver) = Pair();
        var record = Seal(sender, [1, 2, 3]);
        record[2] ^= 0x01;
        Assert.Equal(ParseStatus.NeedMoreData, receiver.TryOpen(record, out _, out _, out _));
        Assert.Equal(MigrationRecordRejection.AuthenticationFailed, Open(receiver, [.. record, .. new byte[256]], out _));
    }

    [Fact]
    public void Record_Replayed_IsRefused()
    {
        var (sender, receiver) = Pair();
        var first = Seal(sender, [1]);
        Assert.Equal(MigrationRecordRejection.None, Open(receiver, first, out _));
        Assert.Equal(MigrationRecordRejection.Replayed, Open(receiver, first, out _));
    }

    [Fact]
    public void Records_Reordered_AreRefused()
    {
        var (sender, receiver) = Pair();
        _ = Seal(sender, [1]);
        var second = Seal(sender, [2]);
        Assert.Equal(MigrationRecordRejection.OutOfOrder, Open(receiver, second, out _));
    }

    [Fact]
    public void Record_ReflectedToItsSender_IsRefused()
    {
        var (sender, _) = Pair();
        var reflected = new MigrationRecords(ChannelKey, InitiatorNonce, ResponderNonce, initiator: true);
        Assert.Equal(MigrationRecordRejection.AuthenticationFailed, Open(reflected, Seal(sender, [1]), out _));
    }

    [Fact]
    public void Record_OfAnotherClusterKey_IsRefused()
    {
        var (sender, receiver) = Pair(MigrationRecords.DeriveChannelKey("another cluster"u8));
        Assert.Equal(MigrationRecordRejection.AuthenticationFailed, Open(receiver, Seal(sender, [1]), out _));
    }

    [Fact]
    public void Record_OfAnEarlierConnection_IsRefusedByANewOne()
    {
        var (sender, _) = Pair();
        var (_, fresh) = Pair(receiverResponderNonce: [.. Enumerable.Repeat((byte)3, MigrationRecords.NonceLength)]);
        Assert.Equal(MigrationRecordRejection.AuthenticationFailed, Open(fresh, Seal(sender, [1]), out _));
    }

    [Fact]
    public void Length_AboveTheLimit_IsRefusedBeforeBuffering()
    {
        var (_, receiver) = Pair();
        var header = new byte[MigrationRecords.HeaderLength];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(header, MigrationRecords.MaxPlaintextLength + 1u);
        Assert.Equal(MigrationRecordRejection.TooLong, Open(receiver, header, out _));
    }

    [Fact]
    public void ChannelKey_OfAClusterKey_IsItsHkdfNotTheKeyItself()
    {
        var clusterKey = new byte[32];
        Assert.NotEqual(clusterKey, MigrationRecords.DeriveChannelKey(clusterKey));
        // RFC 5869 HKDF-SHA256 (empty salt, info "l2balance migration channel v1"), computed outside .NET with hmac/hashlib.
        Assert.Equal("AB6B16DC1E4BD41FEC12CDE0A012AFB56A528FDDE8E0043DEABB93A518E98687", Convert.ToHexString(MigrationRecords.DeriveChannelKey(clusterKey)));
        clusterKey[0] = 1;
        Assert.Equal("DBC5C17E03F5B1D2ED27F8CF125EF8870AB640A9563EBE307D26F19320BF5250", Convert.ToHexString(MigrationRecords.DeriveChannelKey(clusterKey)));
    }
}
