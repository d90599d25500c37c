using System.Buffers.Binary;
using System.Text;

namespace L2Balance.Balancer.Health;

/// <summary>What a reply to the DNS probe's query is (<see cref="DnsProbeCodec.ReadReply"/>).</summary>
internal enum DnsReplyVerdict
{
    /// <summary>Our question echoed, NOERROR, at least one answer record, every record within the message.</summary>
    Answered,
    /// <summary>Another query's id: not ours (late, stray or forged); the probe keeps waiting for its own.</summary>
    OtherId,
    /// <summary>Shorter than a header, QR clear, a record running past the end, a bad name: not a DNS reply.</summary>
    Malformed,
    /// <summary>The question section is not the one asked (other name, type or class, or not exactly one).</summary>
    WrongQuestion,
    /// <summary>RCODE other than NOERROR (SERVFAIL, NXDOMAIN, REFUSED...).</summary>
    ErrorCode,
    /// <summary>NOERROR with an empty answer section (NODATA).</summary>
    NoAnswer,
}

/// <summary>
/// The wire form of the DNS health probe (RFC 1035 section 4): one question of type A, class IN,
/// and the checks on its reply. Pure: spans in, verdicts out; a malformed reply is a verdict,
/// never an exception.
/// </summary>
internal static class DnsProbeCodec
{
    public const int HeaderLength = 12;

    /// <summary>RFC 1035 section 2.3.4: a name is at most 255 octets on the wire, a label at most 63.</summary>
    public const int MaxNameLength = 255;

    public const ushort TypeA = 1;

    public const ushort ClassIn = 1;

    private const int MaxLabelLength = 63;

    /// <summary>
    /// The wire form of <paramref name="name"/> (labels of letters, digits, '-' and '_', a trailing
    /// dot optional), or null with the reason in <paramref name="problem"/>.
    /// </summary>
    public static byte[]? EncodeName(string name, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(name);
        problem = null;
        var trimmed = name.EndsWith('.') ? name[..^1] : name;
        if (trimmed.Length == 0)
        {
            problem = "the name is empty";
            return null;
        }
        var wire = new List<byte>(trimmed.Length + 2);
        foreach (var label in trimmed.Split('.'))
        {
            if (label.Length is 0 or > MaxLabelLength)
            {
                problem = $"label '{label}' must have 1 to {MaxLabelLength} characters";
                return null;
            }
            if (!label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                problem = $"label '{label}' may hold only letters, digits, '-' and '_'";
                return null;
            }
            wire.Add((byte)label.Length);
            wire.AddRange(Encoding.ASCII.GetBytes(label));
        }
        wire.Add(0);
        if (wire.Count > MaxNameLength)
        {
            problem = $"the name is longer than {MaxNameLength} octets";
            return null;
        }
        return [.. wire];
    }

    /// <summary>The length of the query for a name of <paramref name="wireName"/> octets.</summary>
    public static int QueryLength(int wireName) => HeaderLength + wireName + 4;

    /// <summary>
    /// Writes a standard query (RD set: a resolver answers it too) with id <paramref name="id"/>
    /// for <paramref name="wireName"/>, type A, class IN; returns its length.
    /// </summary>
    public static int WriteQuery(Span<byte> buffer, ushort id, ReadOnlySpan<byte> wireName)
    {
        var length = QueryLength(wireName.Length);
        var query = buffer[..length];
        query.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(query, id);
        query[2] = 0x01; // RD
        BinaryPrimitives.WriteUInt16BigEndian(query[4..], 1); // QDCOUNT
        wireName.CopyTo(query[HeaderLength..]);
        BinaryPrimitives.WriteUInt16BigEndian(query[(HeaderLength + wireName.Length)..], TypeA);
        BinaryPrimitives.WriteUInt16BigEndian(query[(HeaderLength + wireName.Length + 2)..], ClassIn);
        return length;
    }

    /// <summary>
    /// Judges <paramref name="reply"/> to the query with <paramref name="id"/> for
    /// <paramref name="wireName"/>; <paramref name="rcode"/> is the reply's RCODE (0 when not read).
    /// </summary>
    public static DnsReplyVerdict ReadReply(ReadOnlySpan<byte> reply, ushort id, ReadOnlySpan<byte> wireName, out int rcode)
    {
        rcode = 0;
        if (reply.Length < HeaderLength)
        {
            return DnsReplyVerdict.Malformed;
        }
        if (BinaryPrimitives.ReadUInt16BigEndian(reply) != id)
        {
            return DnsReplyVerdict.OtherId;
        }
        if ((reply[2] & 0x80) == 0)
        {
            return DnsReplyVerdict.Malformed;
        }
        rcode = reply[3] & 0x0f;
        var questions = BinaryPrimitives.ReadUInt16BigEndian(reply[4..]);
        var answers = BinaryPrimitives.ReadUInt16BigEndian(reply[6..]);
        // A server may leave the question out of an error reply (RFC 1035 leaves it open): the RCODE says enough.
        if (rcode != 0 && questions == 0)
        {
            return DnsReplyVerdict.ErrorCode;
        }
        if (questions != 1)
        {
            return DnsReplyVerdict.WrongQuestion;
        }
        var offset = HeaderLength;
        var questionEnd = offset + wireName.Length + 4;
        if (questionEnd > reply.Length)
        {
            return DnsReplyVerdict.Malformed;
        }
        // Names compare without regard to ASCII case (RFC 4343); a server may echo 0x20-mixed case.
        if (!Ascii.EqualsIgnoreCase(reply.Slice(offset, wireName.Length), wireName)
            || BinaryPrimitives.ReadUInt16BigEndian(reply[(offset + wireName.Length)..]) != TypeA
            || BinaryPrimitives.ReadUInt16BigEndian(reply[(offset + wireName.Length + 2)..]) != ClassIn)
        {
            return DnsReplyVerdict.WrongQuestion;
        }
        if (rcode != 0)
        {
            return DnsReplyVerdict.ErrorCode;
        }
        if (answers == 0)
        {
            return DnsReplyVerdict.NoAnswer;
        }
        offset = questionEnd;
        for (var i = 0; i < answers; i++)
        {
            if (!SkipName(reply, ref offset) || offset + 10 > reply.Length)
            {
                return DnsReplyVerdict.Malformed;
            }
            var dataLength = BinaryPrimitives.ReadUInt16BigEndian(reply[(offset + 8)..]);
            offset += 10 + dataLength;
            if (offset > reply.Length)
            {
                return DnsReplyVerdict.Malformed;
            }
        }
        return DnsReplyVerdict.Answered;
    }

    /// <summary>Steps over a name at <paramref name="offset"/>: labels ending in a root label or a compression pointer (RFC 1035 section 4.1.4).</summary>
    private static bool SkipName(ReadOnlySpan<byte> message, ref int offset)
    {
        var octets = 0;
        while (offset < message.Length)
        {
            var length = message[offset];
            switch (length & 0xc0)
            {
                case 0xc0:
                    if (offset + 2 > message.Length)
                    {
                        return false;
                    }
                    offset += 2;
                    return true;
                case 0x00:
                    offset += 1 + length;
                    octets += 1 + length;
                    if (length == 0)
                    {
                        return offset <= message.Length;
                    }
                    if (octets > MaxNameLength)
                    {
                        return false;
                    }
                    break;
                default:
                    return false; // 0x40 and 0x80: extended label types, not in a reply to a type A query
            }
        }
        return false;
    }
}
