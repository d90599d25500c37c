using System.Net;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Protocol;

public class UdpHeaderCodecTests
{
    private const string ExampleCom = "6578616D706C652E636F6D"; // "example.com"
    private static readonly byte[] Payload = [0xDE, 0xAD, 0xBE, 0xEF];

    private static SocksEndpoint Ip(string address, ushort port) => SocksEndpoint.FromAddress(IPAddress.Parse(address), port);

    public static TheoryData<string, byte, SocksEndpoint> Vectors => new()
    {
        // A DNS query to 1.2.3.4:53, standalone (FRAG 0).
        { "00 00 00 01 01 02 03 04 00 35", 0, Ip("1.2.3.4", 53) },
        // FRAG is reported, not rejected (RFC 1928 section 7 lets the relay decide).
        { "00 00 01 01 01 02 03 04 00 35", 1, Ip("1.2.3.4", 53) },
        { "00 00 FF 01 01 02 03 04 00 35", 0xFF, Ip("1.2.3.4", 53) },
        { "00 00 00 04 20010DB8000000000000000000000001 01 BB", 0, Ip("2001:db8::1", 443) },
        { $"00 00 00 03 0B {ExampleCom} 00 35", 0, SocksEndpoint.FromHost("example.com", 53) },
    };

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Header_RfcBytes_RoundTrip(string hex, byte fragment, SocksEndpoint destination) =>
        AssertRoundTrip(new UdpHeader(fragment, destination), Wire.Hex(hex));

    [Fact]
    public void Header_RandomValues_RoundTrip()
    {
        var random = new Random(1928_7);
        for (int i = 0; i < 500; i++)
        {
            var header = new UdpHeader((byte)random.Next(256), RandomValues.Endpoint(random));
            var buffer = new byte[UdpHeaderCodec.GetLength(header.Destination)];
            AssertRoundTrip(header, buffer[..UdpHeaderCodec.Write(header, buffer)]);
        }
    }

    [Fact]
    public void Header_IPv4MappedIPv6_IsWrittenAsIPv4()
    {
        var header = new UdpHeader(0, SocksEndpoint.FromAddress(IPAddress.Parse("::ffff:1.2.3.4"), 53));
        AssertRoundTrip(header, Wire.Hex("00 00 00 01 01 02 03 04 00 35"));
    }

    [Fact]
    public void GetLength_EachAddressType_IsItsHeaderSize()
    {
        Assert.Equal(10, UdpHeaderCodec.GetLength(Ip("1.2.3.4", 1)));
        Assert.Equal(22, UdpHeaderCodec.GetLength(Ip("::1", 1)));
        Assert.Equal(7 + 11, UdpHeaderCodec.GetLength(SocksEndpoint.FromHost("example.com", 1)));
        Assert.Equal(7 + 255, UdpHeaderCodec.GetLength(SocksEndpoint.FromHost(new string('x', 255), 1)));
    }

    [Theory]
    [InlineData("01 00 00 01 01 02 03 04 00 35", SocksRejection.BadReservedByte)]
    [InlineData("00 01 00 01 01 02 03 04 00 35", SocksRejection.BadReservedByte)]
    [InlineData("00 00 00 02 01 02 03 04 00 35", SocksRejection.BadAddressType)]
    [InlineData("00 00 00 00", SocksRejection.BadAddressType)]
    [InlineData("00 00 00 03 00 00 35", SocksRejection.EmptyDomainName)]
    [InlineData("00 00 00 03 03 61 20 62 00 35", SocksRejection.BadDomainName)]
    [InlineData("00 00 00 03 01 80 00 35", SocksRejection.BadDomainName)]
    [InlineData("", SocksRejection.Truncated)]
    [InlineData("00 00", SocksRejection.Truncated)]
    [InlineData("00 00 00", SocksRejection.Truncated)]
    [InlineData("00 00 00 03", SocksRejection.Truncated)]
    [InlineData("00 00 00 03 05 61 62", SocksRejection.Truncated)]
    public void Header_Invalid_HasExactReason(string hex, SocksRejection reason)
    {
        byte[] datagram = Wire.Hex(hex);
        Assert.Equal(ParseStatus.Invalid, UdpHeaderCodec.TryParse(datagram, out UdpHeader header, out int headerLength, out SocksRejection actual));
        Assert.Equal(reason, actual);
        Assert.Equal(0, headerLength);
        Assert.Equal(default, header);
    }

    [Fact]
    public void Write_IntoTooSmallSpan_Throws()
    {
        var header = new UdpHeader(0, Ip("1.2.3.4", 53));
        Assert.Throws<ArgumentException>(() => UdpHeaderCodec.Write(header, new byte[9]));
        Assert.Throws<ArgumentException>(() => UdpHeaderCodec.Write(new UdpHeader(0, default), new byte[64]));
        Assert.Throws<ArgumentException>(() => UdpHeaderCodec.GetLength(default));
    }

    [Fact]
    public void Write_BytesAfterTheHeader_AreLeftAlone()
    {
        byte[] buffer = Enumerable.Repeat((byte)0xAA, 16).ToArray();
        int written = UdpHeaderCodec.Write(new UdpHeader(0, Ip("1.2.3.4", 53)), buffer);
        Assert.Equal(10, written);
        Assert.All(buffer[10..], b => Assert.Equal(0xAA, b));
    }

    [Fact]
    public void Header_Garbage_NeverThrowsNorNeedsMoreData()
    {
        byte[][] templates =
        [
            Wire.Hex("00 00 00 01 01 02 03 04 00 35 DE AD"),
            Wire.Hex($"00 00 00 03 0B {ExampleCom} 00 35"),
            Wire.Hex("00 00 00 04 20010DB8000000000000000000000001 01 BB"),
        ];
        var random = new Random(1928_71);
        var seen = new HashSet<ParseStatus>();
        for (int i = 0; i < 20_000; i++)
        {
            byte[] datagram = CodecAssert.Garbage(random, templates, i);
            ParseStatus status = UdpHeaderCodec.TryParse(datagram, out UdpHeader header, out int headerLength, out SocksRejection reason);
            seen.Add(status);
            if (status == ParseStatus.Ok)
            {
                Assert.InRange(headerLength, 8, datagram.Length); // shortest: RSV FRAG ATYP, 1-byte name, PORT
                Assert.Equal(SocksRejection.None, reason);
                Assert.Equal(headerLength, UdpHeaderCodec.GetLength(header.Destination));
                var rewritten = new byte[headerLength];
                UdpHeaderCodec.Write(header, rewritten);
                Assert.Equal(ParseStatus.Ok, UdpHeaderCodec.TryParse(rewritten, out UdpHeader again, out _, out _));
                Assert.Equal(header, again);
            }
            else
            {
                Assert.Equal(ParseStatus.Invalid, status);
                Assert.NotEqual(SocksRejection.None, reason);
                Assert.Equal(0, headerLength);
            }
        }

        Assert.Contains(ParseStatus.Ok, seen);
        Assert.Contains(ParseStatus.Invalid, seen);
    }

    /// <summary>
    /// Write gives <paramref name="wire"/> exactly; TryParse of wire + payload gives the header back
    /// with headerLength = wire length; every strict prefix is Invalid(Truncated).
    /// </summary>
    private static void AssertRoundTrip(UdpHeader header, byte[] wire)
    {
        Assert.Equal(wire.Length, UdpHeaderCodec.GetLength(header.Destination));
        var written = new byte[wire.Length];
        Assert.Equal(wire.Length, UdpHeaderCodec.Write(header, written));
        Assert.Equal(Wire.ToHex(wire), Wire.ToHex(written));

        foreach (byte[] datagram in new[] { wire, Wire.Concat(wire, Payload) })
        {
            Assert.Equal(ParseStatus.Ok, UdpHeaderCodec.TryParse(datagram, out UdpHeader parsed, out int headerLength, out SocksRejection reason));
            Assert.Equal(SocksRejection.None, reason);
            Assert.Equal(wire.Length, headerLength);
            Assert.Equal(header, parsed);
        }

        for (int length = 0; length < wire.Length; length++)
        {
            Assert.Equal(ParseStatus.Invalid, UdpHeaderCodec.TryParse(wire.AsSpan(0, length), out _, out int headerLength, out SocksRejection reason));
            Assert.Equal(SocksRejection.Truncated, reason);
            Assert.Equal(0, headerLength);
        }
    }
}
