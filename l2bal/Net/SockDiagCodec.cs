using System.Buffers.Binary;
using System.Net;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Net;

/// <summary>
/// Pure codec for a dump of the TCP sockets in LISTEN state (sock_diag(7), linux/inet_diag.h);
/// integers in host order except ports and addresses (network order), every part 4-byte aligned:
/// <code>
/// nlmsghdr (16)          | u32 len | u16 type = SOCK_DIAG_BY_FAMILY | u16 flags = REQUEST|DUMP | u32 seq | u32 pid |
/// inet_diag_req_v2 (56)  | u8 family | u8 protocol = TCP | u8 ext | u8 pad | u32 states = 1 &lt;&lt; TCP_LISTEN | sockid (48) |
/// reply: nlmsghdr | inet_diag_msg (72): u8 family | u8 state | u8 timer | u8 retrans |
///        sockid: be16 sport | be16 dport | 16 src | 16 dst | u32 if | u32 cookie[2] | u32 expires, rqueue, wqueue, uid, inode
/// </code>
/// </summary>
internal static class SockDiagCodec
{
    /// <summary>Length of the dump request.</summary>
    public const int RequestLength = NLMSG_HDRLEN + SizeOfInetDiagReqV2;

    /// <summary>Writes the request for every listening TCP socket of <paramref name="family"/> (AF_INET or AF_INET6).</summary>
    public static int WriteListenDump(Span<byte> destination, byte family, uint sequence)
    {
        if (family is not (AF_INET or AF_INET6))
        {
            throw new ArgumentOutOfRangeException(nameof(family), family, "AF_INET or AF_INET6.");
        }
        var message = destination[..RequestLength];
        message.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(message, RequestLength);
        BinaryPrimitives.WriteUInt16LittleEndian(message[4..], SOCK_DIAG_BY_FAMILY);
        BinaryPrimitives.WriteUInt16LittleEndian(message[6..], NLM_F_REQUEST | NLM_F_DUMP);
        BinaryPrimitives.WriteUInt32LittleEndian(message[8..], sequence);
        var request = message[NLMSG_HDRLEN..];
        request[0] = family;
        request[1] = IPPROTO_TCP;
        BinaryPrimitives.WriteUInt32LittleEndian(request[4..], 1u << TCP_LISTEN);
        return RequestLength;
    }

    /// <summary>
    /// Reads one received datagram of the dump answering <paramref name="sequence"/>: calls
    /// <paramref name="listener"/> with each listening socket's local address and port, and says
    /// whether the dump is complete. Messages with another sequence number are skipped.
    /// </summary>
    public static NetlinkDumpStatus Read(ReadOnlySpan<byte> datagram, uint sequence, Action<IPAddress, int> listener, out int errno)
    {
        ArgumentNullException.ThrowIfNull(listener);
        return RtNetlinkCodec.ReadDump(datagram, sequence, (type, body) =>
        {
            if (type != SOCK_DIAG_BY_FAMILY)
            {
                return true;
            }
            if (body.Length < SizeOfInetDiagMsg)
            {
                return false;
            }
            var family = body[0];
            var id = body[4..(4 + SizeOfInetDiagSockid)];
            var port = BinaryPrimitives.ReadUInt16BigEndian(id);
            var source = id[4..20];
            if (family == AF_INET)
            {
                listener(new IPAddress(source[..4]), port);
            }
            else if (family == AF_INET6)
            {
                listener(new IPAddress(source), port);
            }
            return true;
        }, out errno);
    }
}
