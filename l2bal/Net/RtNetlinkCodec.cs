using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Net;

/// <summary>What one received datagram of a dump (inet_diag, nf_tables objects) said.</summary>
internal enum NetlinkDumpStatus
{
    /// <summary>Its messages read; the dump goes on in the next datagram.</summary>
    More,

    /// <summary>NLMSG_DONE: the dump is complete.</summary>
    Done,

    /// <summary>NLMSG_ERROR: the kernel refused the dump (see the errno).</summary>
    Error,

    /// <summary>A message shorter than its headers, or a length that does not fit: the dump is abandoned.</summary>
    Invalid,
}

/// <summary>What an rtnetlink reply says about one request.</summary>
internal enum NetlinkAckStatus
{
    /// <summary>NLMSG_ERROR with error 0: done.</summary>
    Ok,

    /// <summary>NLMSG_ERROR with a negative errno: the kernel refused (see the errno).</summary>
    Error,

    /// <summary>Not the answer to our sequence number (another message; keep reading).</summary>
    OtherMessage,

    /// <summary>Malformed: shorter than its headers or a length that does not fit.</summary>
    Invalid,
}

/// <summary>
/// Pure codec for the two rtnetlink messages NodeSetup needs (rtnetlink(7), netlink(7)); all
/// integers in host order (little-endian here), every part 4-byte aligned:
/// <code>
/// nlmsghdr (16)  | u32 nlmsg_len | u16 nlmsg_type | u16 nlmsg_flags | u32 nlmsg_seq | u32 nlmsg_pid |
/// ifaddrmsg (8)  | u8 ifa_family | u8 ifa_prefixlen | u8 ifa_flags | u8 ifa_scope | u32 ifa_index |
/// rtattr (4+4)   | u16 rta_len = 8 | u16 rta_type = IFA_LOCAL   | 4 address bytes |
/// rtattr (4+4)   | u16 rta_len = 8 | u16 rta_type = IFA_ADDRESS | 4 address bytes |
/// ack: nlmsghdr (type NLMSG_ERROR) | s32 error (0 or -errno) | the request's nlmsghdr ...
/// </code>
/// </summary>
internal static class RtNetlinkCodec
{
    /// <summary>Length of an IPv4 RTM_NEWADDR / RTM_DELADDR request.</summary>
    public const int AddressRequestLength = NLMSG_HDRLEN + SizeOfIfaddrmsg + (2 * (RTA_HDRLEN + 4));

    /// <summary>Length of an IPv6 RTM_NEWADDR / RTM_DELADDR request (16-byte addresses).</summary>
    public const int AddressRequestLength6 = NLMSG_HDRLEN + SizeOfIfaddrmsg + (2 * (RTA_HDRLEN + 16));

    /// <summary>Rounds up to the 4-byte netlink alignment (NLMSG_ALIGN / RTA_ALIGN).</summary>
    public static int Align(int length) => (length + NLMSG_ALIGNTO - 1) & ~(NLMSG_ALIGNTO - 1);

    /// <summary>
    /// Writes an IPv4 or IPv6 (flagged IFA_F_NODAD: never duplicate address detection) address request: <paramref name="type"/> RTM_NEWADDR (with NLM_F_CREATE |
    /// NLM_F_EXCL, so an address already present yields EEXIST) or RTM_DELADDR, always with
    /// NLM_F_ACK so every outcome is reported. Returns the length written.
    /// </summary>
    public static int WriteAddressRequest(Span<byte> destination, ushort type, uint sequence, int interfaceIndex, IPAddress address, byte prefixLength)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"Only IPv4 and IPv6 addresses: {address}.", nameof(address));
        }
        bool v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        int requestLength = v6 ? AddressRequestLength6 : AddressRequestLength;

        if (type is not (RTM_NEWADDR or RTM_DELADDR))
        {
            throw new ArgumentOutOfRangeException(nameof(type), "RTM_NEWADDR or RTM_DELADDR.");
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThan(prefixLength, (byte)(v6 ? 128 : 32));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(interfaceIndex);
        if (destination.Length < requestLength)
        {
            throw new ArgumentException("Destination too small for an address request.", nameof(destination));
        }

        var d = destination[..requestLength];
        d.Clear();
        ushort flags = (ushort)(NLM_F_REQUEST | NLM_F_ACK | (type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0));
        BinaryPrimitives.WriteUInt32LittleEndian(d, (uint)requestLength);
        BinaryPrimitives.WriteUInt16LittleEndian(d[4..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(d[6..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], sequence);
        // nlmsg_pid 0: the kernel fills in the sender's port id.

        var ifa = d[NLMSG_HDRLEN..];
        ifa[0] = v6 ? AF_INET6 : AF_INET;
        ifa[1] = prefixLength;
        ifa[2] = v6 ? IFA_F_NODAD : (byte)0;
        ifa[3] = RT_SCOPE_UNIVERSE;
        BinaryPrimitives.WriteInt32LittleEndian(ifa[4..], interfaceIndex);

        int offset = NLMSG_HDRLEN + SizeOfIfaddrmsg;
        offset += WriteAddressAttribute(d[offset..], IFA_LOCAL, address);
        WriteAddressAttribute(d[offset..], IFA_ADDRESS, address);
        return requestLength;
    }

    /// <summary>A message of a dump other than NLMSG_DONE and NLMSG_ERROR, by its type: false when it does not parse.</summary>
    public delegate bool DumpMessage(ushort type, ReadOnlySpan<byte> body);

    /// <summary>
    /// Reads one received datagram of the dump answering <paramref name="sequence"/>: hands each of its messages to
    /// <paramref name="message"/> and says whether the dump is complete. Messages with another sequence number are skipped;
    /// an NLMSG_ERROR with errno 0 is an acknowledgement, not an error.
    /// </summary>
    public static NetlinkDumpStatus ReadDump(ReadOnlySpan<byte> datagram, uint sequence, DumpMessage message, out int errno)
    {
        ArgumentNullException.ThrowIfNull(message);
        errno = 0;
        while (!datagram.IsEmpty)
        {
            if (!TryNextMessage(ref datagram, out var type, out var answered, out var body))
            {
                return NetlinkDumpStatus.Invalid;
            }
            if (answered != sequence)
            {
                continue;
            }
            switch (type)
            {
                case NLMSG_DONE:
                    return NetlinkDumpStatus.Done;
                case NLMSG_ERROR:
                    if (body.Length < 4)
                    {
                        return NetlinkDumpStatus.Invalid;
                    }
                    errno = -BinaryPrimitives.ReadInt32LittleEndian(body);
                    if (errno != 0)
                    {
                        return NetlinkDumpStatus.Error;
                    }
                    break;
                default:
                    if (!message(type, body))
                    {
                        return NetlinkDumpStatus.Invalid;
                    }
                    break;
            }
        }
        return NetlinkDumpStatus.More;
    }

    /// <summary>
    /// The next message of a received <paramref name="datagram"/>, which is advanced past it (aligned): its type, sequence
    /// and body. False when the header is short or its length does not fit: the datagram is malformed.
    /// </summary>
    public static bool TryNextMessage(ref ReadOnlySpan<byte> datagram, out ushort type, out uint sequence, out ReadOnlySpan<byte> body)
    {
        type = 0;
        sequence = 0;
        body = default;
        if (datagram.Length < NLMSG_HDRLEN)
        {
            return false;
        }
        var length = BinaryPrimitives.ReadUInt32LittleEndian(datagram);
        if (length < NLMSG_HDRLEN || length > datagram.Length)
        {
            return false;
        }
        type = BinaryPrimitives.ReadUInt16LittleEndian(datagram[4..]);
        sequence = BinaryPrimitives.ReadUInt32LittleEndian(datagram[8..]);
        body = datagram[NLMSG_HDRLEN..(int)length];
        datagram = datagram[Math.Min(datagram.Length, Align((int)length))..];
        return true;
    }

    /// <summary>
    /// Reads one netlink message from <paramref name="source"/> and, if it is the NLMSG_ERROR
    /// answering <paramref name="sequence"/>, its errno (positive; 0 for success).
    /// <paramref name="consumed"/> is the aligned length of the message, to step to the next.
    /// </summary>
    public static NetlinkAckStatus TryReadAck(ReadOnlySpan<byte> source, uint sequence, out int errno, out int consumed)
    {
        var status = TryReadAck(source, out uint answered, out errno, out consumed);
        return status is NetlinkAckStatus.Ok or NetlinkAckStatus.Error && answered != sequence ? NetlinkAckStatus.OtherMessage : status;
    }

    /// <summary>As the overload above, for an ack of any request: <paramref name="sequence"/> is the one it answers.</summary>
    public static NetlinkAckStatus TryReadAck(ReadOnlySpan<byte> source, out uint sequence, out int errno, out int consumed)
    {
        errno = 0;
        sequence = 0;
        consumed = 0;
        if (source.Length < NLMSG_HDRLEN)
        {
            return NetlinkAckStatus.Invalid;
        }

        uint length = BinaryPrimitives.ReadUInt32LittleEndian(source);
        if (length < NLMSG_HDRLEN || length > (uint)source.Length)
        {
            return NetlinkAckStatus.Invalid;
        }

        consumed = Math.Min(Align((int)length), source.Length);
        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(source[4..]);
        sequence = BinaryPrimitives.ReadUInt32LittleEndian(source[8..]);
        if (type != NLMSG_ERROR)
        {
            return NetlinkAckStatus.OtherMessage;
        }

        if (length < NLMSG_HDRLEN + 4)
        {
            return NetlinkAckStatus.Invalid;
        }

        int error = BinaryPrimitives.ReadInt32LittleEndian(source[NLMSG_HDRLEN..]);
        if (error > 0)
        {
            return NetlinkAckStatus.Invalid;
        }

        errno = -error;
        return error == 0 ? NetlinkAckStatus.Ok : NetlinkAckStatus.Error;
    }

    private static int WriteAddressAttribute(Span<byte> destination, ushort type, IPAddress address)
    {
        address.TryWriteBytes(destination[RTA_HDRLEN..], out int bytes);
        int length = RTA_HDRLEN + bytes;
        BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)length);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], type);
        return Align(length);
    }
}
