using System.Buffers.Binary;
using System.Text;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Net;

/// <summary>
/// The nf_tables counter objects of one table, read over NETLINK_NETFILTER without libnftables: its cache loads every set's
/// elements for <c>list counters</c> (moved_away's too: 13 ms with the set empty, about 200 ms at 20,000 elements,
/// docs/benchmarks.md#what-the-drained-nodes-l2bal-cpu-was). Request, linux/netfilter/nf_tables.h:
/// <code>
/// nlmsghdr (type NFNL_SUBSYS_NFTABLES &lt;&lt; 8 | NFT_MSG_GETOBJ, NLM_F_REQUEST | NLM_F_DUMP)
/// nfgenmsg (family NFPROTO_*, version 0, res_id 0)
/// NFTA_OBJ_TABLE (string, NUL-terminated) | NFTA_OBJ_TYPE (be32 NFT_OBJECT_COUNTER): the kernel's dump filter
/// </code>
/// Each answer is an NFT_MSG_NEWOBJ with NFTA_OBJ_TABLE, NFTA_OBJ_NAME, NFTA_OBJ_TYPE and NFTA_OBJ_DATA
/// (nested NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS, be64); NLMSG_DONE ends the dump.
/// </summary>
internal static class NftObjCodec
{
    public const int NFNL_SUBSYS_NFTABLES = 10;
    public const int NFT_MSG_NEWOBJ = 18;
    public const int NFT_MSG_GETOBJ = 19;
    public const ushort NFTA_OBJ_TABLE = 1;
    public const ushort NFTA_OBJ_NAME = 2;
    public const ushort NFTA_OBJ_TYPE = 3;
    public const ushort NFTA_OBJ_DATA = 4;
    public const uint NFT_OBJECT_COUNTER = 1;
    public const ushort NFTA_COUNTER_PACKETS = 2;

    /// <summary>linux/netfilter.h: the families of the tables l2bal installs.</summary>
    public const byte NFPROTO_IPV4 = 2;
    public const byte NFPROTO_NETDEV = 5;
    public const byte NFPROTO_IPV6 = 10;

    /// <summary>NLA_F_NESTED: set on nested attributes by the kernel; masked off when reading a type.</summary>
    private const ushort AttributeTypeMask = 0x3fff;

    /// <summary>The largest request: a table name of up to 255 bytes (NFT_TABLE_MAXNAMELEN is 256 with its NUL).</summary>
    public const int MaxRequestLength = NLMSG_HDRLEN + SizeOfNfgenmsg + 4 + 256 + 4 + 4;

    /// <summary>The nf_tables family of an nft family name: ip, ip6 or netdev.</summary>
    public static byte Family(string family) => family switch
    {
        "ip" => NFPROTO_IPV4,
        "ip6" => NFPROTO_IPV6,
        "netdev" => NFPROTO_NETDEV,
        _ => throw new ArgumentOutOfRangeException(nameof(family), family, "ip, ip6 or netdev."),
    };

    /// <summary>Writes the dump request for the counters of table <paramref name="table"/> of <paramref name="family"/>.</summary>
    public static int WriteCounterDump(Span<byte> destination, byte family, string table, uint sequence)
    {
        ArgumentNullException.ThrowIfNull(table);
        var name = Encoding.ASCII.GetBytes(table);
        if (name.Length is 0 or > 255 || name.Contains((byte)0))
        {
            throw new ArgumentException($"Table name '{table}': 1 to 255 bytes, no NUL.", nameof(table));
        }
        int tableAttribute = 4 + name.Length + 1;
        int length = NLMSG_HDRLEN + SizeOfNfgenmsg + RtNetlinkCodec.Align(tableAttribute) + 8;
        var message = destination[..length];
        message.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(message[4..], (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ);
        BinaryPrimitives.WriteUInt16LittleEndian(message[6..], NLM_F_REQUEST | NLM_F_DUMP);
        BinaryPrimitives.WriteUInt32LittleEndian(message[8..], sequence);
        message[NLMSG_HDRLEN] = family;
        message[NLMSG_HDRLEN + 1] = NFNETLINK_V0;
        var at = message[(NLMSG_HDRLEN + SizeOfNfgenmsg)..];
        BinaryPrimitives.WriteUInt16LittleEndian(at, (ushort)tableAttribute);
        BinaryPrimitives.WriteUInt16LittleEndian(at[2..], NFTA_OBJ_TABLE);
        name.CopyTo(at[4..]);
        at = at[RtNetlinkCodec.Align(tableAttribute)..];
        BinaryPrimitives.WriteUInt16LittleEndian(at, 8);
        BinaryPrimitives.WriteUInt16LittleEndian(at[2..], NFTA_OBJ_TYPE);
        BinaryPrimitives.WriteUInt32BigEndian(at[4..], NFT_OBJECT_COUNTER);
        return length;
    }

    /// <summary>
    /// Reads one received datagram of the dump answering <paramref name="sequence"/>: adds each counter of table
    /// <paramref name="table"/> to <paramref name="packets"/> by name. Messages with another sequence number are skipped,
    /// as are objects of another table or type (the kernel filters; this does not trust it).
    /// </summary>
    public static NetlinkDumpStatus Read(ReadOnlySpan<byte> datagram, uint sequence, string table, Dictionary<string, long> packets, out int errno)
    {
        ArgumentNullException.ThrowIfNull(packets);
        return RtNetlinkCodec.ReadDump(datagram, sequence, (type, body) =>
            type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWOBJ)
            || (body.Length >= SizeOfNfgenmsg && TryReadCounter(body[SizeOfNfgenmsg..], table, packets)), out errno);
    }

    /// <summary>One object's attributes: false when they do not parse; a counter of the table is added.</summary>
    private static bool TryReadCounter(ReadOnlySpan<byte> attributes, string table, Dictionary<string, long> packets)
    {
        string? objectTable = null, name = null;
        uint? objectType = null;
        long? count = null;
        while (!attributes.IsEmpty)
        {
            if (!TryNext(ref attributes, out var type, out var value))
            {
                return false;
            }
            switch (type)
            {
                case NFTA_OBJ_TABLE:
                    objectTable = ReadString(value);
                    break;
                case NFTA_OBJ_NAME:
                    name = ReadString(value);
                    break;
                case NFTA_OBJ_TYPE when value.Length == 4:
                    objectType = BinaryPrimitives.ReadUInt32BigEndian(value);
                    break;
                case NFTA_OBJ_DATA:
                    while (!value.IsEmpty)
                    {
                        if (!TryNext(ref value, out var inner, out var data))
                        {
                            return false;
                        }
                        if (inner == NFTA_COUNTER_PACKETS && data.Length == 8)
                        {
                            count = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(data), long.MaxValue);
                        }
                    }
                    break;
            }
        }
        if (objectType == NFT_OBJECT_COUNTER && objectTable == table && name is not null && count is { } c)
        {
            packets[name] = c;
        }
        return objectTable is not null && name is not null;
    }

    /// <summary>The next attribute of <paramref name="attributes"/>, advanced past it (4-byte aligned); false when malformed.</summary>
    private static bool TryNext(ref ReadOnlySpan<byte> attributes, out ushort type, out ReadOnlySpan<byte> value)
    {
        type = 0;
        value = default;
        if (attributes.Length < 4)
        {
            return false;
        }
        int length = BinaryPrimitives.ReadUInt16LittleEndian(attributes);
        if (length < 4 || length > attributes.Length)
        {
            return false;
        }
        type = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(attributes[2..]) & AttributeTypeMask);
        value = attributes[4..length];
        attributes = attributes[Math.Min(attributes.Length, RtNetlinkCodec.Align(length))..];
        return true;
    }

    /// <summary>A NUL-terminated attribute string (up to its first NUL).</summary>
    private static string ReadString(ReadOnlySpan<byte> value)
    {
        int end = value.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? value : value[..end]);
    }
}
