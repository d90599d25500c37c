using System.Buffers;
using System.Net;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Protocol;

public class Socks5CodecTests
{
    private const string ExampleCom = "6578616D706C652E636F6D"; // "example.com"

    private static readonly SequenceParser<Socks5Greeting> ParseGreeting = Socks5Codec.TryParseGreeting;
    private static readonly SequenceParser<AuthMethod> ParseMethod = Socks5Codec.TryParseMethodSelection;
    private static readonly SequenceParser<Socks5Request> ParseRequest = Socks5Codec.TryParseRequest;
    private static readonly SequenceParser<Socks5Reply> ParseReply = Socks5Codec.TryParseReply;

    private static readonly Action<Socks5Greeting, IBufferWriter<byte>> WriteGreeting = (g, w) => Socks5Codec.WriteGreeting(g.Methods.Span, w);
    private static readonly Action<AuthMethod, IBufferWriter<byte>> WriteMethod = Socks5Codec.WriteMethodSelection;
    private static readonly Action<Socks5Request, IBufferWriter<byte>> WriteRequest = (r, w) => Socks5Codec.WriteRequest(r, w);
    private static readonly Action<Socks5Reply, IBufferWriter<byte>> WriteReply = (r, w) => Socks5Codec.WriteReply(r, w);

    private static SocksEndpoint Ip(string address, ushort port) => SocksEndpoint.FromAddress(IPAddress.Parse(address), port);

    // ---- Greeting (RFC 1928 section 3) ----

    [Theory]
    [InlineData("05 01 00", new byte[] { 0x00 })]
    [InlineData("05 02 00 02", new byte[] { 0x00, 0x02 })]
    [InlineData("05 03 00 01 02", new byte[] { 0x00, 0x01, 0x02 })]
    [InlineData("05 02 80 FE", new byte[] { 0x80, 0xFE })]
    public void Greeting_RfcBytes_RoundTrip(string hex, byte[] methods) =>
        CodecAssert.RoundTrips(ParseGreeting, WriteGreeting, new Socks5Greeting(methods), hex);

    [Fact]
    public void Greeting_With255Methods_RoundTrips()
    {
        byte[] methods = Enumerable.Range(0, 255).Select(i => (byte)i).ToArray();
        byte[] wire = CodecAssert.RoundTrips(ParseGreeting, WriteGreeting, new Socks5Greeting(methods));
        Assert.Equal(257, wire.Length);
    }

    [Fact]
    public void Greeting_Offers_IsTrueForOfferedMethodsOnly()
    {
        Assert.Equal(ParseStatus.Ok, Socks5Codec.TryParseGreeting(new ReadOnlySequence<byte>(Wire.Hex("05 02 00 02")), out Socks5Greeting greeting, out _, out _));
        Assert.True(greeting.Offers(AuthMethod.NoAuthentication));
        Assert.True(greeting.Offers(AuthMethod.UsernamePassword));
        Assert.False(greeting.Offers(AuthMethod.Gssapi));
        Assert.False(greeting.Offers(AuthMethod.NoAcceptableMethods));
        Assert.False(default(Socks5Greeting).Offers(AuthMethod.NoAuthentication));
    }

    [Fact]
    public void Greeting_ParsedMethods_DoNotAliasTheInputBuffer()
    {
        byte[] wire = Wire.Hex("05 01 02");
        Socks5Codec.TryParseGreeting(new ReadOnlySequence<byte>(wire), out Socks5Greeting greeting, out _, out _);
        wire[2] = 0x00;
        Assert.True(greeting.Offers(AuthMethod.UsernamePassword));
    }

    [Theory]
    [InlineData("04 01 00", SocksRejection.BadVersion)]
    [InlineData("00", SocksRejection.BadVersion)]
    [InlineData("FF 01 00", SocksRejection.BadVersion)]
    [InlineData("05 00", SocksRejection.NoMethods)]
    public void Greeting_Invalid_HasExactReason(string hex, SocksRejection reason) =>
        CodecAssert.Rejects(ParseGreeting, Wire.Hex(hex), reason);

    [Fact]
    public void WriteGreeting_ZeroOrTooManyMethods_AreRefused()
    {
        Assert.Throws<ArgumentException>(() => Socks5Codec.WriteGreeting([], new ArrayBufferWriter<byte>()));
        Assert.Throws<ArgumentException>(() => Socks5Codec.WriteGreeting(new byte[256], new ArrayBufferWriter<byte>()));
    }

    [Fact]
    public void Greeting_Garbage_NeverThrows() =>
        CodecAssert.SurvivesGarbage(ParseGreeting, WriteGreeting, [Wire.Hex("05 02 00 02"), Wire.Hex("05 01 00")], seed: 1928_3);

    // ---- Method selection (RFC 1928 section 3) ----

    [Theory]
    [InlineData("05 00", AuthMethod.NoAuthentication)]
    [InlineData("05 01", AuthMethod.Gssapi)]
    [InlineData("05 02", AuthMethod.UsernamePassword)]
    [InlineData("05 FF", AuthMethod.NoAcceptableMethods)]
    [InlineData("05 80", (AuthMethod)0x80)]
    public void MethodSelection_RfcBytes_RoundTrip(string hex, AuthMethod method) =>
        CodecAssert.RoundTrips(ParseMethod, WriteMethod, method, hex);

    [Theory]
    [InlineData("04 00")]
    [InlineData("01 00")]
    public void MethodSelection_BadVersion_IsRejected(string hex) =>
        CodecAssert.Rejects(ParseMethod, Wire.Hex(hex), SocksRejection.BadVersion);

    [Fact]
    public void MethodSelection_Garbage_NeverThrows() =>
        CodecAssert.SurvivesGarbage(ParseMethod, WriteMethod, [Wire.Hex("05 00")], seed: 1928_31);

    // ---- Request (RFC 1928 section 4) ----

    public static TheoryData<string, SocksCommand, string, ushort> RequestVectors => new()
    {
        // A CONNECT to 1.2.3.4:80, the example of the task brief.
        { "05 01 00 01 01 02 03 04 00 50", SocksCommand.Connect, "1.2.3.4", 80 },
        { "05 02 00 01 0A 00 00 01 04 38", SocksCommand.Bind, "10.0.0.1", 1080 },
        { "05 03 00 01 00 00 00 00 00 00", SocksCommand.UdpAssociate, "0.0.0.0", 0 },
        { "05 01 00 04 00000000000000000000000000000001 01 BB", SocksCommand.Connect, "::1", 443 },
        { "05 01 00 04 20010DB8000000000000000000000001 FF FF", SocksCommand.Connect, "2001:db8::1", 65535 },
    };

    [Theory]
    [MemberData(nameof(RequestVectors))]
    public void Request_IpDestinationRfcBytes_RoundTrip(string hex, SocksCommand command, string address, ushort port) =>
        CodecAssert.RoundTrips(ParseRequest, WriteRequest, new Socks5Request(command, Ip(address, port)), hex);

    [Fact]
    public void Request_DomainDestinationRfcBytes_RoundTrip() =>
        CodecAssert.RoundTrips(ParseRequest, WriteRequest,
            new Socks5Request(SocksCommand.Connect, SocksEndpoint.FromHost("example.com", 443)),
            $"05 01 00 03 0B {ExampleCom} 01 BB");

    [Fact]
    public void Request_IpLiteralAsDomain_StaysAName()
    {
        var request = new Socks5Request(SocksCommand.Connect, SocksEndpoint.FromHost("1.2.3.4", 80));
        CodecAssert.RoundTrips(ParseRequest, WriteRequest, request, "05 01 00 03 07 312E322E332E34 00 50");
        Assert.True(request.Destination.IsDomain);
    }

    [Fact]
    public void Request_DomainOfOneAnd255Bytes_RoundTrip()
    {
        CodecAssert.RoundTrips(ParseRequest, WriteRequest, new Socks5Request(SocksCommand.Connect, SocksEndpoint.FromHost("a", 1)), "05 01 00 03 01 61 00 01");
        string longest = new('x', 255);
        byte[] wire = CodecAssert.RoundTrips(ParseRequest, WriteRequest, new Socks5Request(SocksCommand.Connect, SocksEndpoint.FromHost(longest, 1)));
        Assert.Equal(3 + 1 + 1 + 255 + 2, wire.Length);
    }

    [Fact]
    public void Request_IPv4MappedIPv6_IsWrittenAsIPv4()
    {
        var request = new Socks5Request(SocksCommand.Connect, SocksEndpoint.FromAddress(IPAddress.Parse("::ffff:1.2.3.4"), 80));
        CodecAssert.RoundTrips(ParseRequest, WriteRequest, request, "05 01 00 01 01 02 03 04 00 50");
    }

    [Fact]
    public void Request_IPv4MappedIPv6OnTheWire_ParsesAsIPv4()
    {
        var expected = new Socks5Request(SocksCommand.Connect, Ip("1.2.3.4", 80));
        CodecAssert.Parses(ParseRequest, Wire.Hex("05 01 00 04 00000000000000000000FFFF01020304 00 50"), expected);
    }

    [Fact]
    public void Request_RandomValues_RoundTrip()
    {
        var random = new Random(1928_4);
        for (int i = 0; i < 300; i++)
        {
            var command = (SocksCommand)random.Next(1, 4);
            CodecAssert.RoundTrips(ParseRequest, WriteRequest, new Socks5Request(command, RandomValues.Endpoint(random)));
        }
    }

    [Theory]
    [InlineData("04 01 00 01 01 02 03 04 00 50", SocksRejection.BadVersion)]
    [InlineData("04", SocksRejection.BadVersion)]
    [InlineData("05 00 00 01 01 02 03 04 00 50", SocksRejection.BadCommand)]
    [InlineData("05 04 00 01 01 02 03 04 00 50", SocksRejection.BadCommand)]
    [InlineData("05 FF", SocksRejection.BadCommand)]
    [InlineData("05 01 01 01 01 02 03 04 00 50", SocksRejection.BadReservedByte)]
    [InlineData("05 01 FF", SocksRejection.BadReservedByte)]
    [InlineData("05 01 00 00 01 02 03 04 00 50", SocksRejection.BadAddressType)]
    [InlineData("05 01 00 02", SocksRejection.BadAddressType)]
    [InlineData("05 01 00 05", SocksRejection.BadAddressType)]
    [InlineData("05 01 00 FF", SocksRejection.BadAddressType)]
    [InlineData("05 01 00 03 00 00 50", SocksRejection.EmptyDomainName)]
    [InlineData("05 01 00 03 00", SocksRejection.EmptyDomainName)]
    [InlineData("05 01 00 03 03 61 20 62 00 50", SocksRejection.BadDomainName)] // space
    [InlineData("05 01 00 03 03 61 00 62 00 50", SocksRejection.BadDomainName)] // NUL
    [InlineData("05 01 00 03 03 61 0A 62 00 50", SocksRejection.BadDomainName)] // LF: log forging
    [InlineData("05 01 00 03 03 61 1F 62 00 50", SocksRejection.BadDomainName)]
    [InlineData("05 01 00 03 03 61 7F 62 00 50", SocksRejection.BadDomainName)] // DEL
    [InlineData("05 01 00 03 03 61 80 62 00 50", SocksRejection.BadDomainName)] // not ASCII
    [InlineData("05 01 00 03 02 C3 A9 00 50", SocksRejection.BadDomainName)] // UTF-8 "é": IDNs arrive as punycode
    public void Request_Invalid_HasExactReason(string hex, SocksRejection reason) =>
        CodecAssert.Rejects(ParseRequest, Wire.Hex(hex), reason);

    [Fact]
    public void Request_CommandOrAddressTypeRejection_MapsToItsReplyCode()
    {
        Assert.Equal(ParseStatus.Invalid, Socks5Codec.TryParseRequest(new ReadOnlySequence<byte>(Wire.Hex("05 09")), out _, out _, out SocksRejection badCommand));
        Assert.Equal(ParseStatus.Invalid, Socks5Codec.TryParseRequest(new ReadOnlySequence<byte>(Wire.Hex("05 01 00 09")), out _, out _, out SocksRejection badType));
        Assert.Equal(ReplyCode.CommandNotSupported, SocksErrors.FromRejection(badCommand));
        Assert.Equal(ReplyCode.AddressTypeNotSupported, SocksErrors.FromRejection(badType));
    }

    [Fact]
    public void WriteRequest_UnencodableFields_AreRefused()
    {
        var output = new ArrayBufferWriter<byte>();
        Assert.Throws<ArgumentException>(() => Socks5Codec.WriteRequest(new Socks5Request(SocksCommand.Connect, default), output));
        Assert.Throws<ArgumentException>(() => Socks5Codec.WriteRequest(new Socks5Request(0, Ip("1.2.3.4", 1)), output));
        Assert.Throws<ArgumentException>(() => Socks5Codec.WriteRequest(new Socks5Request((SocksCommand)4, Ip("1.2.3.4", 1)), output));
        Assert.Throws<ArgumentException>(() => Socks5Codec.WriteRequest(new Socks5Request(SocksCommand.Connect, SocksEndpoint.FromHost(new string('x', 256), 1)), output));
        Assert.Throws<ArgumentException>(() => Socks5Codec.WriteRequest(new Socks5Request(SocksCommand.Connect, SocksEndpoint.FromHost("a b", 1)), output));
        Assert.Throws<ArgumentException>(() => Socks5Codec.WriteRequest(new Socks5Request(SocksCommand.Connect, SocksEndpoint.FromHost("caf\u00e9", 1)), output));
        Assert.Equal(0, output.WrittenCount);
    }

    [Fact]
    public void Request_Garbage_NeverThrows() =>
        CodecAssert.SurvivesGarbage(ParseRequest, WriteRequest,
            [
                Wire.Hex("05 01 00 01 01 02 03 04 00 50"),
                Wire.Hex($"05 01 00 03 0B {ExampleCom} 01 BB"),
                Wire.Hex("05 03 00 04 00000000000000000000000000000001 01 BB"),
            ],
            seed: 1928_41);

    // ---- Reply (RFC 1928 section 6) ----

    [Theory]
    [InlineData("05 00 00 01 0A 00 00 01 04 38", ReplyCode.Succeeded, "10.0.0.1", 1080)]
    [InlineData("05 01 00 01 00 00 00 00 00 00", ReplyCode.GeneralFailure, "0.0.0.0", 0)]
    [InlineData("05 02 00 01 00 00 00 00 00 00", ReplyCode.NotAllowedByRuleset, "0.0.0.0", 0)]
    [InlineData("05 03 00 01 00 00 00 00 00 00", ReplyCode.NetworkUnreachable, "0.0.0.0", 0)]
    [InlineData("05 04 00 01 00 00 00 00 00 00", ReplyCode.HostUnreachable, "0.0.0.0", 0)]
    [InlineData("05 05 00 01 00 00 00 00 00 00", ReplyCode.ConnectionRefused, "0.0.0.0", 0)]
    [InlineData("05 06 00 01 00 00 00 00 00 00", ReplyCode.TtlExpired, "0.0.0.0", 0)]
    [InlineData("05 07 00 01 00 00 00 00 00 00", ReplyCode.CommandNotSupported, "0.0.0.0", 0)]
    [InlineData("05 08 00 01 00 00 00 00 00 00", ReplyCode.AddressTypeNotSupported, "0.0.0.0", 0)]
    [InlineData("05 00 00 04 20010DB8000000000000000000000002 C3 50", ReplyCode.Succeeded, "2001:db8::2", 50000)]
    public void Reply_RfcBytes_RoundTrip(string hex, ReplyCode code, string address, ushort port) =>
        CodecAssert.RoundTrips(ParseReply, WriteReply, new Socks5Reply(code, Ip(address, port)), hex);

    [Fact]
    public void Reply_DomainBound_RoundTrips() =>
        CodecAssert.RoundTrips(ParseReply, WriteReply, new Socks5Reply(ReplyCode.Succeeded, SocksEndpoint.FromHost("example.com", 443)),
            $"05 00 00 03 0B {ExampleCom} 01 BB");

    [Fact]
    public void Reply_RandomValues_RoundTrip()
    {
        var random = new Random(1928_6);
        for (int i = 0; i < 300; i++)
        {
            CodecAssert.RoundTrips(ParseReply, WriteReply, new Socks5Reply((ReplyCode)random.Next(0, 9), RandomValues.Endpoint(random)));
        }
    }

    [Theory]
    [InlineData("04 00 00 01 00 00 00 00 00 00", SocksRejection.BadVersion)]
    [InlineData("05 09 00 01 00 00 00 00 00 00", SocksRejection.BadStatus)]
    [InlineData("05 FF", SocksRejection.BadStatus)]
    [InlineData("05 00 01 01 00 00 00 00 00 00", SocksRejection.BadReservedByte)]
    [InlineData("05 00 00 02", SocksRejection.BadAddressType)]
    [InlineData("05 00 00 03 00", SocksRejection.EmptyDomainName)]
    [InlineData("05 00 00 03 01 20 00 00", SocksRejection.BadDomainName)]
    public void Reply_Invalid_HasExactReason(string hex, SocksRejection reason) =>
        CodecAssert.Rejects(ParseReply, Wire.Hex(hex), reason);

    [Fact]
    public void WriteReply_UndefinedCodeOrDefaultEndpoint_IsRefused()
    {
        var output = new ArrayBufferWriter<byte>();
        Assert.Throws<ArgumentException>(() => Socks5Codec.WriteReply(new Socks5Reply((ReplyCode)9, Ip("0.0.0.0", 0)), output));
        Assert.Throws<ArgumentException>(() => Socks5Codec.WriteReply(new Socks5Reply(ReplyCode.Succeeded, default), output));
        Assert.Equal(0, output.WrittenCount);
    }

    [Fact]
    public void Reply_Garbage_NeverThrows() =>
        CodecAssert.SurvivesGarbage(ParseReply, WriteReply,
            [
                Wire.Hex("05 00 00 01 0A 00 00 01 04 38"),
                Wire.Hex($"05 00 00 03 0B {ExampleCom} 01 BB"),
                Wire.Hex("05 00 00 04 20010DB8000000000000000000000002 C3 50"),
            ],
            seed: 1928_61);
}
