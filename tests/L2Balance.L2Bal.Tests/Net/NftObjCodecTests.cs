using System.Buffers.Binary;
using System.Text;
using L2Balance.Balancer.Net;
using Xunit;

namespace L2Balance.L2Bal.Tests.Net;

public sealed class NftObjCodecTests
{
    private const ushort NewObj = (NftObjCodec.NFNL_SUBSYS_NFTABLES << 8) | NftObjCodec.NFT_MSG_NEWOBJ;

    [Fact]
    public void CounterDump_Written_HasExactLayout()
    {
        var buffer = new byte[NftObjCodec.MaxRequestLength];
        var n = NftObjCodec.WriteCounterDump(buffer, NftObjCodec.NFPROTO_IPV4, "l2bal", sequence: 0x01020304);

        byte[] expected =
        [
            // nlmsghdr: len 40, type 10 << 8 | 19 (0x0a13), flags REQUEST|DUMP 0x0301, seq, pid 0
            40, 0, 0, 0, 0x13, 0x0a, 0x01, 0x03, 0x04, 0x03, 0x02, 0x01, 0, 0, 0, 0,
            // nfgenmsg: NFPROTO_IPV4, version 0, res_id 0
            2, 0, 0, 0,
            // NFTA_OBJ_TABLE "l2bal\0": len 10, type 1, padded to 12
            10, 0, 1, 0, (byte)'l', (byte)'2', (byte)'b', (byte)'a', (byte)'l', 0, 0, 0,
            // NFTA_OBJ_TYPE: len 8, type 3, be32 NFT_OBJECT_COUNTER
            8, 0, 3, 0, 0, 0, 0, 1,
        ];
        Assert.Equal(expected, buffer[..n]);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a\0b")]
    public void CounterDump_BadTableName_Throws(string table) =>
        Assert.Throws<ArgumentException>(() => NftObjCodec.WriteCounterDump(new byte[NftObjCodec.MaxRequestLength], 2, table, 1));

    [Theory]
    [InlineData("ip", NftObjCodec.NFPROTO_IPV4)]
    [InlineData("ip6", NftObjCodec.NFPROTO_IPV6)]
    [InlineData("netdev", NftObjCodec.NFPROTO_NETDEV)]
    public void Family_OfAnNftFamilyName_IsItsNfproto(string family, byte expected) => Assert.Equal(expected, NftObjCodec.Family(family));

    [Fact]
    public void Family_Unknown_Throws() => Assert.Throws<ArgumentOutOfRangeException>(() => NftObjCodec.Family("inet"));

    [Fact]
    public void Read_CountersOfTheTable_ByNameThenDone()
    {
        var datagram = Concat(
            Object(7, "l2bal", "accepted_new", 1, packets: 42),
            Object(7, "l2bal", "dropped_moved_out", 1, packets: ulong.MaxValue),
            Object(7, "other", "accepted_new", 1, packets: 5),
            Object(7, "l2bal", "a_quota", 2, packets: 9),
            Object(8, "l2bal", "another_dump", 1, packets: 3),
            Done(7));
        var packets = new Dictionary<string, long>();

        var status = NftObjCodec.Read(datagram, 7, "l2bal", packets, out _);

        Assert.Equal(NetlinkDumpStatus.Done, status);
        Assert.Equal(new Dictionary<string, long> { ["accepted_new"] = 42, ["dropped_moved_out"] = long.MaxValue }, packets);
    }

    [Fact]
    public void Read_WithoutDone_SaysMore()
    {
        var packets = new Dictionary<string, long>();
        Assert.Equal(NetlinkDumpStatus.More, NftObjCodec.Read(Object(7, "l2bal", "c", 1, packets: 1), 7, "l2bal", packets, out _));
        Assert.Equal(1, packets["c"]);
    }

    [Fact]
    public void Read_KernelError_GivesItsErrno()
    {
        var error = Message(2, 7, BitConverter.GetBytes(-2).Concat(new byte[16]).ToArray());
        Assert.Equal(NetlinkDumpStatus.Error, NftObjCodec.Read(error, 7, "l2bal", [], out var errno));
        Assert.Equal(2, errno);
    }

    [Fact]
    public void Read_AckWithErrnoZero_IsNoError()
    {
        var ack = Message(2, 7, new byte[20]);
        Assert.Equal(NetlinkDumpStatus.More, NftObjCodec.Read(ack, 7, "l2bal", [], out _));
    }

    public static TheoryData<string, byte[]> Malformed => new()
    {
        { "shorter than a header", new byte[10] },
        { "length past the datagram", Message(NewObj, 7, new byte[4])[..^1] },
        { "attribute length past the body", Message(NewObj, 7, [2, 0, 0, 0, 40, 0, 1, 0, 0, 0, 0, 0]) },
        { "no nfgenmsg", Message(NewObj, 7, [2, 0]) },
        { "object without a table or name", Message(NewObj, 7, [2, 0, 0, 0, .. Attribute(3, BigEndian32(1))]) },
        { "error shorter than errno", Message(2, 7, [1, 2]) },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Read_Malformed_IsInvalidNeverAnException(string what, byte[] datagram)
    {
        var packets = new Dictionary<string, long>();
        Assert.True(NetlinkDumpStatus.Invalid == NftObjCodec.Read(datagram, 7, "l2bal", packets, out _), what);
        Assert.Empty(packets);
    }

    private static byte[] Object(uint sequence, string table, string name, uint type, ulong packets)
    {
        byte[] data = [.. Attribute(1, BigEndian64(packets * 100)), .. Attribute(NftObjCodec.NFTA_COUNTER_PACKETS, BigEndian64(packets))];
        byte[] body =
        [
            2, 0, 0, 0,
            .. Attribute(NftObjCodec.NFTA_OBJ_TABLE, [.. Encoding.ASCII.GetBytes(table), 0]),
            .. Attribute(NftObjCodec.NFTA_OBJ_NAME, [.. Encoding.ASCII.GetBytes(name), 0]),
            .. Attribute(NftObjCodec.NFTA_OBJ_TYPE, BigEndian32(type)),
            .. Attribute(NftObjCodec.NFTA_OBJ_DATA | 0x8000, data),
        ];
        return Message(NewObj, sequence, body);
    }

    private static byte[] Done(uint sequence) => Message(3, sequence, new byte[4]);

    private static byte[] Message(ushort type, uint sequence, byte[] body)
    {
        var length = 16 + body.Length;
        var message = new byte[(length + 3) & ~3];
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(4), type);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), sequence);
        body.CopyTo(message, 16);
        return message;
    }

    private static byte[] Attribute(ushort type, byte[] value)
    {
        var attribute = new byte[(4 + value.Length + 3) & ~3];
        BinaryPrimitives.WriteUInt16LittleEndian(attribute, (ushort)(4 + value.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(attribute.AsSpan(2), type);
        value.CopyTo(attribute, 4);
        return attribute;
    }

    private static byte[] BigEndian32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return bytes;
    }

    private static byte[] BigEndian64(ulong value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        return bytes;
    }

    private static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(p => p)];
}
