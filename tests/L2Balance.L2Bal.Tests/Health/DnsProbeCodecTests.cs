using System.Buffers.Binary;
using L2Balance.Balancer.Health;
using Xunit;

namespace L2Balance.L2Bal.Tests.Health;

public sealed class DnsProbeCodecTests
{
    private const ushort Id = 0xbeef;
    private static readonly byte[] Name = DnsProbeCodec.EncodeName("probe.lab", out _)!;

    [Fact]
    public void EncodeName_Labels_AreLengthPrefixedAndRootTerminated()
    {
        Assert.Equal([5, .. "probe"u8, 3, .. "lab"u8, 0], Name);
        Assert.Equal(Name, DnsProbeCodec.EncodeName("probe.lab.", out _));
    }

    [Theory]
    [InlineData("", "the name is empty")]
    [InlineData(".", "the name is empty")]
    [InlineData("a..b", "label '' must have 1 to 63 characters")]
    [InlineData("a b", "label 'a b' may hold only letters, digits, '-' and '_'")]
    public void EncodeName_BadName_IsRefusedWithTheReason(string name, string problem)
    {
        Assert.Null(DnsProbeCodec.EncodeName(name, out var said));
        Assert.Equal(problem, said);
    }

    [Fact]
    public void EncodeName_LabelOf64OrNameOver255_IsRefused()
    {
        Assert.Null(DnsProbeCodec.EncodeName(new string('a', 64), out _));
        Assert.NotNull(DnsProbeCodec.EncodeName(new string('a', 63), out _));
        Assert.Null(DnsProbeCodec.EncodeName(string.Join('.', Enumerable.Repeat(new string('a', 63), 4)), out var problem));
        Assert.Equal("the name is longer than 255 octets", problem);
    }

    [Fact]
    public void WriteQuery_ForAName_IsOneQuestionOfTypeAClassInWithRecursionDesired()
    {
        var query = Query();
        Assert.Equal(
            [0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 5, .. "probe"u8, 3, .. "lab"u8, 0, 0, 1, 0, 1],
            query);
    }

    [Fact]
    public void ReadReply_AnswerWithCompressedName_IsAnswered()
    {
        Assert.Equal(DnsReplyVerdict.Answered, DnsProbeCodec.ReadReply(Reply(), Id, Name, out var rcode));
        Assert.Equal(0, rcode);
    }

    [Fact]
    public void ReadReply_QuestionInOtherCase_IsAnswered()
    {
        var reply = Reply();
        reply[13] = (byte)'P';
        Assert.Equal(DnsReplyVerdict.Answered, DnsProbeCodec.ReadReply(reply, Id, Name, out _));
    }

    [Fact]
    public void ReadReply_OtherId_IsNotOurs()
    {
        Assert.Equal(DnsReplyVerdict.OtherId, DnsProbeCodec.ReadReply(Reply(), Id + 1, Name, out _));
    }

    [Fact]
    public void ReadReply_QueryEchoedBack_IsMalformed()
    {
        Assert.Equal(DnsReplyVerdict.Malformed, DnsProbeCodec.ReadReply(Query(), Id, Name, out _));
    }

    [Theory]
    [InlineData(3)] // NXDOMAIN
    [InlineData(2)] // SERVFAIL
    [InlineData(5)] // REFUSED
    public void ReadReply_ErrorCode_IsAnErrorWithTheCode(int code)
    {
        var reply = Reply();
        reply[3] = (byte)(0x80 | code);
        Assert.Equal(DnsReplyVerdict.ErrorCode, DnsProbeCodec.ReadReply(reply, Id, Name, out var rcode));
        Assert.Equal(code, rcode);
    }

    [Fact]
    public void ReadReply_ErrorWithoutQuestion_IsAnError()
    {
        byte[] reply = [0xbe, 0xef, 0x81, 0x82, 0, 0, 0, 0, 0, 0, 0, 0];
        Assert.Equal(DnsReplyVerdict.ErrorCode, DnsProbeCodec.ReadReply(reply, Id, Name, out var rcode));
        Assert.Equal(2, rcode);
    }

    [Fact]
    public void ReadReply_NoAnswerRecord_IsNoAnswer()
    {
        var reply = Reply()[..(12 + Name.Length + 4)];
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(6), 0);
        Assert.Equal(DnsReplyVerdict.NoAnswer, DnsProbeCodec.ReadReply(reply, Id, Name, out _));
    }

    [Theory]
    [InlineData("other.lab")]
    [InlineData("probe.la")]
    public void ReadReply_OtherQuestion_IsWrongQuestion(string name)
    {
        var other = DnsProbeCodec.EncodeName(name, out _)!;
        Assert.Equal(DnsReplyVerdict.WrongQuestion, DnsProbeCodec.ReadReply(Reply(other), Id, Name, out _));
    }

    [Fact]
    public void ReadReply_OtherType_IsWrongQuestion()
    {
        var reply = Reply();
        reply[12 + Name.Length + 1] = 16; // TXT
        Assert.Equal(DnsReplyVerdict.WrongQuestion, DnsProbeCodec.ReadReply(reply, Id, Name, out _));
    }

    [Fact]
    public void ReadReply_EveryTruncation_IsAVerdictNeverAnException()
    {
        var reply = Reply();
        for (var length = 0; length < reply.Length; length++)
        {
            var verdict = DnsProbeCodec.ReadReply(reply.AsSpan(0, length), Id, Name, out _);
            Assert.NotEqual(DnsReplyVerdict.Answered, verdict);
        }
    }

    [Fact]
    public void ReadReply_RandomBytes_NeverThrow()
    {
        var random = new Random(16);
        var buffer = new byte[96];
        for (var i = 0; i < 20_000; i++)
        {
            random.NextBytes(buffer);
            // Half with our id and QR set, so the checks past the header run too.
            if (i % 2 == 0)
            {
                BinaryPrimitives.WriteUInt16BigEndian(buffer, Id);
                buffer[2] |= 0x80;
            }
            _ = DnsProbeCodec.ReadReply(buffer.AsSpan(0, random.Next(buffer.Length + 1)), Id, Name, out _);
        }
    }

    [Fact]
    public void ReadReply_AnswerPastTheEnd_IsMalformed()
    {
        var reply = Reply();
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(6), 2); // ANCOUNT 2, one present
        Assert.Equal(DnsReplyVerdict.Malformed, DnsProbeCodec.ReadReply(reply, Id, Name, out _));
    }

    private static byte[] Query()
    {
        var query = new byte[DnsProbeCodec.QueryLength(Name.Length)];
        DnsProbeCodec.WriteQuery(query, Id, Name);
        return query;
    }

    /// <summary>A NOERROR reply with one A record whose owner is a pointer to the question's name.</summary>
    private static byte[] Reply(byte[]? questionName = null)
    {
        var name = questionName ?? Name;
        byte[] header = [0xbe, 0xef, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        byte[] answer = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, 1];
        return [.. header, .. name, 0, 1, 0, 1, .. answer];
    }
}
