using System.Buffers;
using System.Net;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Protocol;

public class Socks4CodecTests
{
    private const string ExampleCom = "6578616D706C652E636F6D"; // "example.com"
    private const string Fred = "46726564"; // "Fred"

    private static readonly SequenceParser<Socks4Request> ParseRequest = Socks4Codec.TryParseRequest;
    private static readonly SequenceParser<Socks4Reply> ParseReply = Socks4Codec.TryParseReply;
    private static readonly Action<Socks4Request, IBufferWriter<byte>> WriteRequest = (r, w) => Socks4Codec.WriteRequest(r, w);
    private static readonly Action<Socks4Reply, IBufferWriter<byte>> WriteReply = (r, w) => Socks4Codec.WriteReply(r, w);

    private static SocksEndpoint Ip(string address, ushort port) => SocksEndpoint.FromAddress(IPAddress.Parse(address), port);

    // ---- SOCKS4 request ----

    public static TheoryData<string, SocksCommand, string, ushort, string> Socks4Vectors => new()
    {
        { "04 01 00 50 01 02 03 04 00", SocksCommand.Connect, "1.2.3.4", 80, "" },
        { $"04 01 00 50 01 02 03 04 {Fred} 00", SocksCommand.Connect, "1.2.3.4", 80, "Fred" },
        { $"04 02 1F 90 C0 A8 01 01 {Fred} 00", SocksCommand.Bind, "192.168.1.1", 8080, "Fred" },
        // 0.0.0.0 has x == 0, so it is a plain SOCKS4 destination, not the 4a marker.
        { "04 01 00 50 00 00 00 00 00", SocksCommand.Connect, "0.0.0.0", 80, "" },
        { "04 01 FF FF FF FF FF FF 00", SocksCommand.Connect, "255.255.255.255", 65535, "" },
    };

    [Theory]
    [MemberData(nameof(Socks4Vectors))]
    public void Request_Socks4ProtocolBytes_RoundTrip(string hex, SocksCommand command, string address, ushort port, string userId) =>
        CodecAssert.RoundTrips(ParseRequest, WriteRequest, new Socks4Request(command, Ip(address, port), userId), hex);

    [Fact]
    public void Request_Socks4aProtocolBytes_RoundTrip()
    {
        var request = new Socks4Request(SocksCommand.Connect, SocksEndpoint.FromHost("example.com", 80), "Fred");
        CodecAssert.RoundTrips(ParseRequest, WriteRequest, request, $"04 01 00 50 00 00 00 01 {Fred} 00 {ExampleCom} 00");
        CodecAssert.RoundTrips(ParseRequest, WriteRequest, request with { UserId = "" }, $"04 01 00 50 00 00 00 01 00 {ExampleCom} 00");
    }

    [Theory]
    [InlineData("00 00 00 02")]
    [InlineData("00 00 00 FF")]
    public void Request_AnyNonZeroLastOctet_IsSocks4a(string dstIp) =>
        CodecAssert.Parses(ParseRequest, Wire.Hex($"04 01 01 BB {dstIp} 00 {ExampleCom} 00"),
            new Socks4Request(SocksCommand.Connect, SocksEndpoint.FromHost("example.com", 443), ""));

    [Fact]
    public void Request_255ByteUserIdAndHost_RoundTrip()
    {
        var request = new Socks4Request(SocksCommand.Connect, SocksEndpoint.FromHost(new string('h', 255), 1), new string('u', 255));
        byte[] wire = CodecAssert.RoundTrips(ParseRequest, WriteRequest, request);
        Assert.Equal(8 + 256 + 256, wire.Length);
    }

    [Fact]
    public void Request_Utf8UserId_RoundTrips() =>
        CodecAssert.RoundTrips(ParseRequest, WriteRequest, new Socks4Request(SocksCommand.Connect, Ip("1.2.3.4", 80), "j\u00fcrgen"),
            "04 01 00 50 01 02 03 04 6AC3BC7267656E 00");

    [Fact]
    public void Request_RandomValues_RoundTrip()
    {
        var random = new Random(4);
        for (int i = 0; i < 300; i++)
        {
            var port = (ushort)random.Next(65536);
            byte[] ip = RandomValues.Bytes(random, 4);
            ip[0] |= 1; // never the 0.0.0.x SOCKS4a marker
            SocksEndpoint destination = random.Next(2) == 0
                ? SocksEndpoint.FromAddress(new IPAddress(ip), port)
                : SocksEndpoint.FromHost(RandomValues.Host(random, random.Next(1, 256)), port);
            var command = random.Next(2) == 0 ? SocksCommand.Connect : SocksCommand.Bind;
            CodecAssert.RoundTrips(ParseRequest, WriteRequest, new Socks4Request(command, destination, RandomValues.Host(random, random.Next(0, 256))));
        }
    }

    [Fact]
    public void Request_IPv4MappedIPv6_IsWrittenAsIPv4() =>
        CodecAssert.RoundTrips(ParseRequest, WriteRequest,
            new Socks4Request(SocksCommand.Connect, SocksEndpoint.FromAddress(IPAddress.Parse("::ffff:1.2.3.4"), 80), ""),
            "04 01 00 50 01 02 03 04 00");

    public static TheoryData<string, SocksRejection> InvalidRequests => new()
    {
        { "05 01 00 50 01 02 03 04 00", SocksRejection.BadVersion },
        { "00", SocksRejection.BadVersion },
        { "04 00 00 50 01 02 03 04 00", SocksRejection.BadCommand },
        { "04 03 00 50 01 02 03 04 00", SocksRejection.BadCommand }, // no UDP in SOCKS4
        { "04 FF", SocksRejection.BadCommand },
        { "04 01 00 50 01 02 03 04 " + new string('6', 512), SocksRejection.TooLong }, // 256 bytes, no NUL
        { "04 01 00 50 01 02 03 04 FF 00", SocksRejection.BadCredentialsEncoding },
        { "04 01 00 50 01 02 03 04 61 C3 00", SocksRejection.BadCredentialsEncoding },
        { "04 01 00 50 00 00 00 01 00 00", SocksRejection.EmptyDomainName },
        { "04 01 00 50 00 00 00 01 00 " + new string('6', 512), SocksRejection.TooLong },
        { "04 01 00 50 00 00 00 01 00 61 20 62 00", SocksRejection.BadDomainName },
        { "04 01 00 50 00 00 00 01 00 61 0A 00", SocksRejection.BadDomainName },
        { "04 01 00 50 00 00 00 01 00 61 7F 00", SocksRejection.BadDomainName },
        { "04 01 00 50 00 00 00 01 00 C3 A9 00", SocksRejection.BadDomainName },
    };

    [Theory]
    [MemberData(nameof(InvalidRequests))]
    public void Request_Invalid_HasExactReason(string hex, SocksRejection reason) =>
        CodecAssert.Rejects(ParseRequest, Wire.Hex(hex), reason);

    [Fact]
    public void Request_UnterminatedUserIdShorterThanTheLimit_NeedsMoreData()
    {
        byte[] wire = Wire.Hex("04 01 00 50 01 02 03 04 " + new string('6', 510)); // 255 bytes, no NUL yet
        Assert.Equal(ParseStatus.NeedMoreData, Socks4Codec.TryParseRequest(new ReadOnlySequence<byte>(wire), out _, out int consumed, out _));
        Assert.Equal(0, consumed);
    }

    [Fact]
    public void WriteRequest_WhatSocks4CannotCarry_IsRefused()
    {
        var output = new ArrayBufferWriter<byte>();
        Assert.Throws<ArgumentException>(() => Socks4Codec.WriteRequest(new Socks4Request(SocksCommand.Connect, Ip("2001:db8::1", 80), ""), output));
        Assert.Throws<ArgumentException>(() => Socks4Codec.WriteRequest(new Socks4Request(SocksCommand.UdpAssociate, Ip("1.2.3.4", 80), ""), output));
        Assert.Throws<ArgumentException>(() => Socks4Codec.WriteRequest(new Socks4Request(SocksCommand.Connect, default, ""), output));
        Assert.Throws<ArgumentException>(() => Socks4Codec.WriteRequest(new Socks4Request(SocksCommand.Connect, Ip("1.2.3.4", 80), "a\0b"), output));
        Assert.Throws<ArgumentException>(() => Socks4Codec.WriteRequest(new Socks4Request(SocksCommand.Connect, Ip("1.2.3.4", 80), new string('u', 256)), output));
        Assert.Throws<ArgumentException>(() => Socks4Codec.WriteRequest(new Socks4Request(SocksCommand.Connect, SocksEndpoint.FromHost("a b", 80), ""), output));
        Assert.ThrowsAny<ArgumentException>(() => Socks4Codec.WriteRequest(new Socks4Request(SocksCommand.Connect, Ip("1.2.3.4", 80), "\uDC00"), output));
        Assert.ThrowsAny<ArgumentException>(() => Socks4Codec.WriteRequest(default, output));
        Assert.Equal(0, output.WrittenCount);
    }

    [Fact]
    public void Request_Garbage_NeverThrows() =>
        CodecAssert.SurvivesGarbage(ParseRequest, WriteRequest,
            [
                Wire.Hex($"04 01 00 50 01 02 03 04 {Fred} 00"),
                Wire.Hex($"04 01 00 50 00 00 00 01 {Fred} 00 {ExampleCom} 00"),
                Wire.Hex($"04 02 00 50 00 00 00 07 00 {ExampleCom} 00"),
            ],
            seed: 4_1);

    // ---- SOCKS4 reply ----

    [Theory]
    [InlineData("00 5A 00 00 00 00 00 00", Socks4ReplyCode.Granted, "0.0.0.0", 0)]
    [InlineData("00 5A 04 38 0A 00 00 01", Socks4ReplyCode.Granted, "10.0.0.1", 1080)]
    [InlineData("00 5B 00 00 00 00 00 00", Socks4ReplyCode.RejectedOrFailed, "0.0.0.0", 0)]
    [InlineData("00 5C 00 00 00 00 00 00", Socks4ReplyCode.IdentdUnreachable, "0.0.0.0", 0)]
    [InlineData("00 5D 00 00 00 00 00 00", Socks4ReplyCode.IdentdMismatch, "0.0.0.0", 0)]
    public void Reply_ProtocolBytes_RoundTrip(string hex, Socks4ReplyCode code, string address, ushort port) =>
        CodecAssert.RoundTrips(ParseReply, WriteReply, new Socks4Reply(code, IPAddress.Parse(address), port), hex);

    [Fact]
    public void WriteReply_IPv4MappedIPv6_IsWrittenAsIPv4()
    {
        byte[] wire = Wire.Write(w => Socks4Codec.WriteReply(new Socks4Reply(Socks4ReplyCode.Granted, IPAddress.Parse("::ffff:10.0.0.1"), 1080), w));
        Assert.Equal("005A04380A000001", Wire.ToHex(wire));
    }

    [Theory]
    [InlineData("04 5A 00 00 00 00 00 00", SocksRejection.BadVersion)] // VN is 0 in replies
    [InlineData("05", SocksRejection.BadVersion)]
    [InlineData("00 59 00 00 00 00 00 00", SocksRejection.BadStatus)]
    [InlineData("00 5E", SocksRejection.BadStatus)]
    [InlineData("00 00", SocksRejection.BadStatus)]
    public void Reply_Invalid_HasExactReason(string hex, SocksRejection reason) =>
        CodecAssert.Rejects(ParseReply, Wire.Hex(hex), reason);

    [Fact]
    public void WriteReply_WhatSocks4CannotCarry_IsRefused()
    {
        var output = new ArrayBufferWriter<byte>();
        Assert.Throws<ArgumentException>(() => Socks4Codec.WriteReply(new Socks4Reply(Socks4ReplyCode.Granted, IPAddress.IPv6Loopback, 1), output));
        Assert.Throws<ArgumentException>(() => Socks4Codec.WriteReply(new Socks4Reply((Socks4ReplyCode)89, IPAddress.Any, 1), output));
        Assert.ThrowsAny<ArgumentException>(() => Socks4Codec.WriteReply(default, output));
        Assert.Equal(0, output.WrittenCount);
    }

    [Fact]
    public void Reply_Garbage_NeverThrows() =>
        CodecAssert.SurvivesGarbage(ParseReply, WriteReply, [Wire.Hex("00 5A 04 38 0A 00 00 01"), Wire.Hex("00 5B 00 00 00 00 00 00")], seed: 4_2);
}
