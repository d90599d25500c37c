using System.Buffers.Binary;
using L2Balance.Balancer.Health;
using Xunit;

namespace L2Balance.L2Bal.Tests.Health;

/// <summary>The nflog codec of the port-unreachable wake against hand-built messages (include/uapi/linux/netfilter/nfnetlink_log.h).</summary>
public sealed class NflogCodecTests
{
    private static readonly byte[] Vip = [198, 18, 0, 10];
    private static readonly byte[] Client = [198, 18, 0, 100];

    [Fact]
    public void WriteBind_Group_IsAConfigRequestWithBindCopyPacketAndThresholdOne()
    {
        var request = new byte[NflogCodec.BindLength];
        Assert.Equal(48, NflogCodec.WriteBind(request, 0x4c32, 7));
        Assert.Equal(48u, BinaryPrimitives.ReadUInt32LittleEndian(request));
        Assert.Equal(0x0401, BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(4)));
        Assert.Equal(0x0005, BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(6)));
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(request.AsSpan(8)));
        Assert.Equal([0, 0, 0x4c, 0x32], request[16..20]);
        Assert.Equal([5, 0, 1, 0, 1], request[20..25]);
        Assert.Equal([10, 0, 2, 0, 0, 0, 0, 64, 2, 0], request[28..38]);
        Assert.Equal([8, 0, 5, 0, 0, 0, 0, 1], request[40..48]);
    }

    [Fact]
    public void Read_PortUnreachableFromTheVip_GivesTheQuotedDestinationPort()
    {
        var seen = Read(Message(Payload()));
        Assert.Equal([(NflogPacketVerdict.PortUnreachable, 53)], seen);
    }

    [Fact]
    public void Read_TwoMessagesAndAnAck_GivesBothPacketsAndSkipsTheAck()
    {
        var ack = new byte[36];
        BinaryPrimitives.WriteUInt32LittleEndian(ack, 36);
        BinaryPrimitives.WriteUInt16LittleEndian(ack.AsSpan(4), 2);
        var seen = Read([.. Message(Payload(port: 53)), .. ack, .. Message(Payload(port: 5353))]);
        Assert.Equal([(NflogPacketVerdict.PortUnreachable, 53), (NflogPacketVerdict.PortUnreachable, 5353)], seen);
    }

    [Theory]
    [InlineData("icmp-code")]
    [InlineData("source")]
    [InlineData("quoted-destination")]
    [InlineData("quoted-tcp")]
    [InlineData("not-icmp")]
    [InlineData("ipv6")]
    public void Read_NotAPortUnreachableOfTheVip_IsMalformed(string change)
    {
        var payload = Payload();
        switch (change)
        {
            case "icmp-code": payload[21] = 1; break;
            case "source": Client.CopyTo(payload, 12); break;
            case "quoted-destination": Client.CopyTo(payload, 44); break;
            case "quoted-tcp": payload[37] = 6; break;
            case "not-icmp": payload[9] = 17; break;
            default: payload[0] = 0x65; break;
        }
        Assert.Equal([(NflogPacketVerdict.Malformed, 0)], Read(Message(payload)));
    }

    [Fact]
    public void Read_EveryTruncation_IsMalformedNeverAnException()
    {
        var full = Payload();
        for (var length = 0; length < 52; length++)
        {
            Assert.Equal([(NflogPacketVerdict.Malformed, 0)], Read(Message(full[..length])));
        }
        var message = Message(full);
        for (var length = 1; length < message.Length; length++)
        {
            Assert.All(Read(message[..length]), v => Assert.Equal(NflogPacketVerdict.Malformed, v.Verdict));
        }
    }

    [Fact]
    public void Read_AttributeLengthPastTheMessage_IsMalformed()
    {
        var message = Message(Payload());
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(20), 200);
        Assert.Equal([(NflogPacketVerdict.Malformed, 0)], Read(message));
    }

    [Fact]
    public void Read_RandomBytes_NeverThrow()
    {
        var random = new Random(16);
        var template = Message(Payload());
        for (var i = 0; i < 5000; i++)
        {
            var bytes = (byte[])template.Clone();
            for (var flips = random.Next(1, 6); flips > 0; flips--)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }
            Read(bytes);
        }
    }

    private static List<(NflogPacketVerdict Verdict, int Port)> Read(byte[] datagram)
    {
        var seen = new List<(NflogPacketVerdict, int)>();
        NflogCodec.Read(datagram, Vip, (verdict, port) => seen.Add((verdict, port)));
        return seen;
    }

    /// <summary>An NFULNL_MSG_PACKET with a packet header attribute and the payload, as the kernel sends it.</summary>
    private static byte[] Message(byte[] payload)
    {
        var payloadAttribute = 4 + payload.Length;
        var length = 16 + 4 + 8 + ((payloadAttribute + 3) & ~3);
        var m = new byte[length];
        BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), 0x0400);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(18), 0x4c32);
        // NFULA_PACKET_HDR: hw_protocol 0x0800, hook 3 (output).
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(20), 8);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(22), 1);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(24), 0x0800);
        m[26] = 3;
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(28), (ushort)payloadAttribute);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(30), 9);
        payload.CopyTo(m, 32);
        return m;
    }

    /// <summary>IPv4 ICMP port-unreachable from the VIP to the client quoting the client's UDP datagram to VIP:port (56 bytes; 52 are read).</summary>
    private static byte[] Payload(int port = 53)
    {
        var p = new byte[56];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), 56);
        p[8] = 64;
        p[9] = 1;
        Vip.CopyTo(p, 12);
        Client.CopyTo(p, 16);
        p[20] = 3;
        p[21] = 3;
        p[28] = 0x45;
        p[36] = 63;
        p[37] = 17;
        Client.CopyTo(p, 40);
        Vip.CopyTo(p, 44);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(48), 40000);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(50), (ushort)port);
        return p;
    }
}
