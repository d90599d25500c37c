using System.Buffers;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Protocol;

public class GssapiCodecTests
{
    private static readonly SequenceParser<GssapiMessage> Parse = GssapiCodec.TryParseMessage;
    private static readonly Action<GssapiMessage, IBufferWriter<byte>> Write = (m, w) => GssapiCodec.WriteMessage(m.Type, m.Token.Span, w);

    [Theory]
    [InlineData(GssapiMessageType.Authentication, "6082", "01 01 0002 6082")]
    [InlineData(GssapiMessageType.ProtectionLevel, "02", "01 02 0001 02")]
    [InlineData(GssapiMessageType.Encapsulated, "050403", "01 03 0003 050403")]
    [InlineData(GssapiMessageType.Authentication, "", "01 01 0000")]
    public void Message_RfcBytes_RoundTrip(GssapiMessageType type, string token, string hex) =>
        CodecAssert.RoundTrips(Parse, Write, new GssapiMessage(type, Wire.Hex(token)), hex);

    [Fact]
    public void Abort_Written_IsVerAndFfAlone()
    {
        CodecAssert.Parses(Parse, Wire.Hex("01 FF"), new GssapiMessage(GssapiMessageType.Abort, ReadOnlyMemory<byte>.Empty));
        Assert.Equal("01FF", Wire.ToHex(Wire.Write(GssapiCodec.WriteAbort)));
    }

    [Fact]
    public void Message_LargestHandshakeToken_RoundTrips()
    {
        var token = new byte[GssapiCodec.MaxHandshakeTokenLength];
        new Random(1961).NextBytes(token);
        CodecAssert.RoundTrips(Parse, Write, new GssapiMessage(GssapiMessageType.Authentication, token));
    }

    [Theory]
    [InlineData("05 01 0000", SocksRejection.BadGssapiVersion)]
    [InlineData("00", SocksRejection.BadGssapiVersion)]
    [InlineData("01 00 0000", SocksRejection.BadGssapiMessageType)]
    [InlineData("01 04 0000", SocksRejection.BadGssapiMessageType)]
    [InlineData("01 FE", SocksRejection.BadGssapiMessageType)]
    [InlineData("01 01 4001", SocksRejection.GssapiTokenTooLarge)] // 16385: refused from the header, before the token
    [InlineData("01 03 FFFF", SocksRejection.GssapiTokenTooLarge)]
    public void Message_Invalid_HasExactReason(string hex, SocksRejection reason) =>
        CodecAssert.Rejects(Parse, Wire.Hex(hex), reason);

    [Fact]
    public void Message_LenAboveAnExplicitCap_IsTooLarge()
    {
        var input = new ReadOnlySequence<byte>(Wire.Hex("01 03 0011" + new string('0', 34)));
        Assert.Equal(ParseStatus.Invalid, GssapiCodec.TryParseMessage(input, 16, out _, out int consumed, out var reason));
        Assert.Equal((0, SocksRejection.GssapiTokenTooLarge), (consumed, reason));
        Assert.Equal(ParseStatus.Ok, GssapiCodec.TryParseMessage(input, GssapiCodec.MaxTokenLength, out var message, out consumed, out _));
        Assert.Equal(21, consumed);
        Assert.Equal(17, message.Token.Length);
    }

    [Theory]
    [InlineData("")]
    [InlineData("01")]
    [InlineData("01 01")]
    [InlineData("01 01 00")]
    [InlineData("01 01 0003 AABB")]
    public void Message_Prefix_NeedsMoreData(string hex)
    {
        var input = new ReadOnlySequence<byte>(Wire.Hex(hex));
        Assert.Equal(ParseStatus.NeedMoreData, GssapiCodec.TryParseMessage(input, out _, out int consumed, out var reason));
        Assert.Equal((0, SocksRejection.None), (consumed, reason));
    }

    [Fact]
    public void Write_TokenOverLen_Throws() =>
        Assert.Throws<ArgumentException>(() => GssapiCodec.WriteMessage(GssapiMessageType.Encapsulated, new byte[GssapiCodec.MaxTokenLength + 1], new ArrayBufferWriter<byte>()));

    [Theory]
    [InlineData("00", GssapiProtection.Clear)]
    [InlineData("01", GssapiProtection.Integrity)]
    [InlineData("02", GssapiProtection.Confidentiality)]
    [InlineData("03", GssapiProtection.PerMessage)]
    [InlineData("04", null)]
    [InlineData("", null)]
    [InlineData("0101", null)]
    public void ParseProtection_OfAnOctet_IsALevelOnlyForOneOctetZeroToThree(string hex, GssapiProtection? expected) =>
        Assert.Equal(expected, GssapiCodec.ParseProtection(Wire.Hex(hex)));

    [Fact]
    public void Datagram_OneEncapsulationMessage_IsItsToken()
    {
        Assert.True(GssapiCodec.TryParseDatagram(Wire.Hex("01 03 0003 AABBCC"), out var token));
        Assert.Equal("AABBCC", Wire.ToHex(token));
    }

    [Theory]
    [InlineData("01 03 0004 AABBCC")] // LEN past the datagram
    [InlineData("01 03 0002 AABBCC")] // bytes after the message
    [InlineData("01 02 0001 00")] // not MTYP 3
    [InlineData("02 03 0001 00")] // not VER 1
    [InlineData("00 00 00 01 C6120202 1B59 68")] // a SOCKS UDP datagram sent unwrapped
    [InlineData("01 03 00")]
    [InlineData("")]
    public void Datagram_NotExactlyOneEncapsulationMessage_IsRefused(string hex) =>
        Assert.False(GssapiCodec.TryParseDatagram(Wire.Hex(hex), out _));

    [Fact]
    public void Message_Garbage_NeverThrows() =>
        CodecAssert.SurvivesGarbage(Parse, Write, [Wire.Hex("01 01 0004 60820102"), Wire.Hex("01 FF"), Wire.Hex("01 03 0001 00")], seed: 1961);
}
