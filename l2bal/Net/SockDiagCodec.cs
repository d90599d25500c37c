using System.Buffers.Binary;
using System.Net;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Net;

/// <summary>
/// Pure codec for a dump of the TCP sockets in chosen states (sock_diag(7), linux/inet_diag.h): the
/// listening ones (the health check) or the live connections (the drain's half-closed flows);
/// integers in host order except ports and addresses (network order), every part 4-byte aligned:
/// <code>
/// nlmsghdr (16)          | u32 len | u16 type = SOCK_DIAG_BY_FAMILY | u16 flags = REQUEST|DUMP | u32 seq | u32 pid |
/// inet_diag_req_v2 (56)  | u8 family | u8 protocol = TCP | u8 ext | u8 pad | u32 states (1 &lt;&lt; TCP_state each) | sockid (48) |
/// reply: nlmsghdr | inet_diag_msg (72): u8 family | u8 state | u8 timer | u8 retrans |
///        sockid: be16 sport | be16 dport | 16 src | 16 dst | u32 if | u32 cookie[2] | u32 expires, rqueue, wqueue, uid, inode
/// </code>
/// </summary>
internal static class SockDiagCodec
{
    /// <summary>Length of the dump request.</summary>
    public const int RequestLength = NLMSG_HDRLEN + SizeOfInetDiagReqV2;

    /// <summary>include/net/tcp_states.h: the states of a connection some process still holds open (neither TIME_WAIT, CLOSE nor LISTEN).</summary>
    public const uint LiveStates = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 8) | (1u << 9) | (1u << 11);

    /// <summary>The listening sockets' state, as a bit of the request.</summary>
    public const uint ListenStates = 1u << TCP_LISTEN;

    /// <summary>Writes the request for every TCP socket of <paramref name="family"/> (AF_INET or AF_INET6) in one of <paramref name="states"/>.</summary>
    public static int WriteDump(Span<byte> destination, byte family, uint sequence, uint states)
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
        BinaryPrimitives.WriteUInt32LittleEndian(request[4..], states);
        return RequestLength;
    }

    /// <summary>
    /// Reads one received datagram of the dump answering <paramref name="sequence"/>: calls
    /// <paramref name="socket"/> with each socket's local and remote endpoint and state, and says
    /// whether the dump is complete. Messages with another sequence number are skipped.
    /// </summary>
    public static NetlinkDumpStatus Read(ReadOnlySpan<byte> datagram, uint sequence, Action<InetDiagSocket> socket, out int errno)
    {
        ArgumentNullException.ThrowIfNull(socket);
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
            var localPort = BinaryPrimitives.ReadUInt16BigEndian(id);
            var remotePort = BinaryPrimitives.ReadUInt16BigEndian(id[2..]);
            var local = id[4..20];
            var remote = id[20..36];
            if (family is AF_INET or AF_INET6)
            {
                int length = family == AF_INET ? 4 : 16;
                // idiag_inode after the sockid and expires, rqueue, wqueue, uid: 0 for a socket no process holds (orphaned, closing on its own).
                var inode = BinaryPrimitives.ReadUInt32LittleEndian(body[(4 + SizeOfInetDiagSockid + 16)..]);
                socket(new InetDiagSocket(new IPEndPoint(new IPAddress(local[..length]), localPort), new IPEndPoint(new IPAddress(remote[..length]), remotePort), body[1], inode));
            }
            return true;
        }, out errno);
    }
}

/// <summary>
/// One socket of a sock_diag dump: its local and remote endpoint (IPv4-mapped on a dual-stack socket), its TCP state
/// (include/net/tcp_states.h) and its inode (0 when no process holds it).
/// </summary>
internal readonly record struct InetDiagSocket(IPEndPoint Local, IPEndPoint Remote, byte State, uint Inode);
