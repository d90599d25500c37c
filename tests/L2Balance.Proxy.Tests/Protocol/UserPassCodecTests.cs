using System.Buffers;
using System.Text;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Protocol;

public class UserPassCodecTests
{
    private static readonly SequenceParser<UserPassRequest> ParseRequest = UserPassCodec.TryParseRequest;
    private static readonly SequenceParser<bool> ParseReply = UserPassCodec.TryParseReply;
    private static readonly Action<UserPassRequest, IBufferWriter<byte>> WriteRequest = (r, w) => UserPassCodec.WriteRequest(r, w);
    private static readonly Action<bool, IBufferWriter<byte>> WriteReply = UserPassCodec.WriteReply;

    // ---- Request (RFC 1929 section 2) ----

    [Theory]
    [InlineData("user", "pass", "01 04 75736572 04 70617373")]
    [InlineData("a", "", "01 01 61 00")] // PLEN 0: curl sends it for "user:@proxy"
    [InlineData("j\u00fcrgen", "p\u00e4ss", "01 07 6AC3BC7267656E 05 70C3A47373")] // UTF-8
    [InlineData("a b", "x\ty", "01 03 612062 03 780979")] // any octets, unlike host names
    public void Request_RfcBytes_RoundTrip(string user, string password, string hex) =>
        CodecAssert.RoundTrips(ParseRequest, WriteRequest, new UserPassRequest(user, password), hex);

    [Fact]
    public void Request_255ByteFields_RoundTrip()
    {
        byte[] wire = CodecAssert.RoundTrips(ParseRequest, WriteRequest, new UserPassRequest(new string('u', 255), new string('p', 255)));
        Assert.Equal(3 + 255 + 255, wire.Length);

        // 85 three-byte characters are exactly 255 UTF-8 bytes.
        string euros = new('\u20AC', 85);
        CodecAssert.RoundTrips(ParseRequest, WriteRequest, new UserPassRequest(euros, euros));
    }

    [Fact]
    public void Request_RandomValues_RoundTrip()
    {
        var random = new Random(1929);
        for (int i = 0; i < 300; i++)
        {
            CodecAssert.RoundTrips(ParseRequest, WriteRequest, new UserPassRequest(RandomText(random, 1), RandomText(random, 0)));
        }
    }

    [Theory]
    [InlineData("05 04 75736572 04 70617373", SocksRejection.BadUserPassVersion)]
    [InlineData("00", SocksRejection.BadUserPassVersion)]
    [InlineData("02", SocksRejection.BadUserPassVersion)]
    [InlineData("01 00 04 70617373", SocksRejection.EmptyUserName)]
    [InlineData("01 00", SocksRejection.EmptyUserName)]
    [InlineData("01 01 FF 00", SocksRejection.BadCredentialsEncoding)] // 0xFF never occurs in UTF-8
    [InlineData("01 01 C3 00", SocksRejection.BadCredentialsEncoding)] // truncated sequence
    [InlineData("01 03 EDA080 00", SocksRejection.BadCredentialsEncoding)] // encoded surrogate
    [InlineData("01 02 C0 AF 00", SocksRejection.BadCredentialsEncoding)] // overlong '/'
    [InlineData("01 01 61 01 80", SocksRejection.BadCredentialsEncoding)] // bad password
    public void Request_Invalid_HasExactReason(string hex, SocksRejection reason) =>
        CodecAssert.Rejects(ParseRequest, Wire.Hex(hex), reason);

    [Fact]
    public void WriteRequest_UnencodableFields_AreRefused()
    {
        var output = new ArrayBufferWriter<byte>();
        Assert.Throws<ArgumentException>(() => UserPassCodec.WriteRequest(new UserPassRequest("", "p"), output));
        Assert.Throws<ArgumentException>(() => UserPassCodec.WriteRequest(new UserPassRequest(new string('u', 256), "p"), output));
        Assert.Throws<ArgumentException>(() => UserPassCodec.WriteRequest(new UserPassRequest("u", new string('p', 256)), output));
        Assert.Throws<ArgumentException>(() => UserPassCodec.WriteRequest(new UserPassRequest(new string('\u20AC', 86), "p"), output)); // 258 bytes
        Assert.ThrowsAny<ArgumentException>(() => UserPassCodec.WriteRequest(new UserPassRequest("u\uD800", "p"), output)); // lone surrogate
        Assert.ThrowsAny<ArgumentException>(() => UserPassCodec.WriteRequest(default, output));
        Assert.Equal(0, output.WrittenCount);
    }

    [Fact]
    public void Request_Garbage_NeverThrows() =>
        CodecAssert.SurvivesGarbage(ParseRequest, WriteRequest,
            [Wire.Hex("01 04 75736572 04 70617373"), Wire.Hex("01 07 6AC3BC7267656E 05 70C3A47373"), Wire.Hex("01 01 61 00")],
            seed: 1929_2);

    // ---- Reply (RFC 1929 section 2) ----

    [Theory]
    [InlineData(true, "01 00")]
    [InlineData(false, "01 01")]
    public void Reply_RfcBytes_RoundTrip(bool success, string hex) =>
        CodecAssert.RoundTrips(ParseReply, WriteReply, success, hex);

    [Theory]
    [InlineData("01 02")]
    [InlineData("01 FF")]
    public void Reply_AnyNonZeroStatus_IsFailure(string hex) =>
        CodecAssert.Parses(ParseReply, Wire.Hex(hex), false);

    [Theory]
    [InlineData("05 00")]
    [InlineData("00 00")]
    public void Reply_BadVersion_IsRejected(string hex) =>
        CodecAssert.Rejects(ParseReply, Wire.Hex(hex), SocksRejection.BadUserPassVersion);

    [Fact]
    public void Reply_Garbage_NeverThrows() =>
        CodecAssert.SurvivesGarbage(ParseReply, WriteReply, [Wire.Hex("01 00"), Wire.Hex("01 01")], seed: 1929_3);

    /// <summary>Random text of <paramref name="min"/>..255 UTF-8 bytes, mixing 1-, 2-, 3- and 4-byte characters.</summary>
    private static string RandomText(Random random, int min)
    {
        string[] alphabet = ["a", "Z", "0", " ", ":", "\u00e9", "\u0416", "\u20ac", "\U0001F600"];
        var text = new StringBuilder();
        int target = random.Next(min, 256);
        while (true)
        {
            string next = alphabet[random.Next(alphabet.Length)];
            if (Encoding.UTF8.GetByteCount(text + next) > target)
            {
                break;
            }

            text.Append(next);
        }

        while (Encoding.UTF8.GetByteCount(text.ToString()) < min)
        {
            text.Append('a');
        }

        return text.ToString();
    }
}
