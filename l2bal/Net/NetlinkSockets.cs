using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Net;

/// <summary>The open, receive and acknowledged-request steps that every netlink socket of l2bal shares (rtnetlink, sock_diag, nflog).</summary>
internal static class NetlinkSockets
{
    /// <summary>
    /// Opens an AF_NETLINK socket of <paramref name="protocol"/> in the calling thread's network
    /// namespace, with a receive timeout that bounds a lost reply.
    /// </summary>
    public static SafeSocketHandle Open(int protocol, string protocolName, TimeSpan replyTimeout)
    {
        var handle = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
        if (handle.IsInvalid)
        {
            int errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            throw new IOException($"socket(AF_NETLINK, {protocolName}): {Errno.Name(errno)}");
        }

        // struct timeval { long tv_sec; long tv_usec; } on 64-bit Linux.
        Span<byte> timeval = stackalloc byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(timeval, (long)replyTimeout.TotalSeconds);
        BinaryPrimitives.WriteInt64LittleEndian(timeval[8..], replyTimeout.Milliseconds * 1000L);
        if (setsockopt(handle, SOL_SOCKET, SO_RCVTIMEO, timeval, timeval.Length) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            throw new IOException($"setsockopt(SO_RCVTIMEO): {Errno.Name(errno)}");
        }

        return handle;
    }

    /// <summary>
    /// Receives one datagram (retrying EINTR); a timeout, an error or a datagram larger than
    /// <paramref name="buffer"/> (MSG_TRUNC gives its real length) is an IOException naming <paramref name="what"/>.
    /// </summary>
    public static int Receive(SafeSocketHandle socket, byte[] buffer, TimeSpan replyTimeout, string what)
    {
        while (true)
        {
            nint n = recv(socket, buffer, (nuint)buffer.Length, MSG_TRUNC);
            if (n > buffer.Length)
            {
                throw new IOException($"netlink {what}: a {n}-byte reply does not fit the {buffer.Length}-byte buffer");
            }
            if (n >= 0)
            {
                return (int)n;
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                throw new IOException(errno == EAGAIN
                    ? $"netlink {what}: no reply within {replyTimeout.TotalSeconds:0.#} s"
                    : $"netlink recv {what}: {Errno.Name(errno)}");
            }
        }
    }

    /// <summary>
    /// Sends <paramref name="request"/> (sent with NLM_F_ACK and <paramref name="sequence"/>) and
    /// receives until its acknowledgement: 0 when the kernel accepted it, else the errno it returned.
    /// A failed send, a lost ack or a malformed reply is an IOException naming <paramref name="what"/>.
    /// </summary>
    public static int Acknowledged(SafeSocketHandle socket, ReadOnlySpan<byte> request, uint sequence, byte[] buffer, TimeSpan replyTimeout, string what)
    {
        // No destination: a netlink socket sends to the kernel (port id 0) by default.
        if (send(socket, request, (nuint)request.Length, 0) != request.Length)
        {
            throw new IOException($"netlink send {what}: {Errno.Name(Marshal.GetLastPInvokeError())}");
        }

        while (true)
        {
            int n = Receive(socket, buffer, replyTimeout, what);
            var data = buffer.AsSpan(0, n);
            while (!data.IsEmpty)
            {
                switch (RtNetlinkCodec.TryReadAck(data, sequence, out int errno, out int consumed))
                {
                    case NetlinkAckStatus.Ok:
                        return 0;
                    case NetlinkAckStatus.Error:
                        return errno;
                    case NetlinkAckStatus.Invalid:
                        throw new IOException($"netlink {what}: malformed reply");
                }

                data = data[consumed..];
            }
        }
    }
}
