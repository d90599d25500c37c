using System.Buffers.Binary;
using System.Text;

namespace L2Balance.Lab.Cluster;

/// <summary>A reply as the lab's DNS client reads it: id, RCODE, and the first TXT answer's first string (null without one).</summary>
public readonly record struct DnsTxtReply(ushort Id, int Rcode, string? Text);

/// <summary>
/// The lab client's side of DNS (RFC 1035): a TXT question, and the first TXT string of the reply,
/// which names the server that answered (<see cref="DnsServers.WhoName"/>).
/// </summary>
public static class DnsWire
{
    private const ushort TypeTxt = 16;

    /// <summary>A query for <paramref name="name"/> (dotted, ASCII), type TXT, class IN, with id <paramref name="id"/>.</summary>
    public static byte[] TxtQuery(ushort id, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var message = new List<byte> { (byte)(id >> 8), (byte)id, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 };
        foreach (var label in name.TrimEnd('.').Split('.'))
        {
            message.Add((byte)label.Length);
            message.AddRange(Encoding.ASCII.GetBytes(label));
        }
        message.AddRange([0, 0, (byte)TypeTxt, 0, 1]);
        return [.. message];
    }

    /// <summary>The reply's id, RCODE and first TXT string; null when it is not a well-formed reply.</summary>
    public static DnsTxtReply? ReadTxtAnswer(ReadOnlySpan<byte> reply)
    {
        if (reply.Length < 12 || (reply[2] & 0x80) == 0)
        {
            return null;
        }
        var id = BinaryPrimitives.ReadUInt16BigEndian(reply);
        var rcode = reply[3] & 0x0f;
        int questions = BinaryPrimitives.ReadUInt16BigEndian(reply[4..]);
        int answers = BinaryPrimitives.ReadUInt16BigEndian(reply[6..]);
        var at = 12;
        for (var q = 0; q < questions; q++)
        {
            if (!Skip(reply, ref at) || (at += 4) > reply.Length)
            {
                return null;
            }
        }
        for (var a = 0; a < answers; a++)
        {
            if (!Skip(reply, ref at) || at + 10 > reply.Length)
            {
                return null;
            }
            var type = BinaryPrimitives.ReadUInt16BigEndian(reply[at..]);
            int length = BinaryPrimitives.ReadUInt16BigEndian(reply[(at + 8)..]);
            at += 10;
            if (at + length > reply.Length)
            {
                return null;
            }
            if (type == TypeTxt && length > 0 && reply[at] < length)
            {
                return new DnsTxtReply(id, rcode, Encoding.ASCII.GetString(reply.Slice(at + 1, reply[at])));
            }
            at += length;
        }
        return new DnsTxtReply(id, rcode, null);
    }

    private static bool Skip(ReadOnlySpan<byte> message, ref int at)
    {
        while (at < message.Length)
        {
            var length = message[at];
            if ((length & 0xc0) == 0xc0)
            {
                at += 2;
                return at <= message.Length;
            }
            at += 1 + length;
            if (length == 0)
            {
                return true;
            }
        }
        return false;
    }
}
