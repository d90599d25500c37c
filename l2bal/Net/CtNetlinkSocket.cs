using System.Net.Sockets;
using System.Runtime.InteropServices;
using L2Balance.Balancer.Kernel;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Net;

/// <summary>How many conntrack entries a delete request removed, found gone already (ENOENT), or failed on.</summary>
internal readonly record struct ConntrackDeletes(int Deleted, int Missing, int Errors);

/// <summary>
/// A NETLINK_NETFILTER socket that deletes conntrack entries (<see cref="CtNetlinkCodec"/>),
/// in the network namespace of the thread that opened it. Many requests go in one send; each is acknowledged.
/// </summary>
internal sealed class CtNetlinkSocket : IDisposable
{
    /// <summary>The kernel answers at once; this only bounds a lost ack.</summary>
    private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Requests per send: their acks (error ones echo the request) stay far below the socket's receive buffer.</summary>
    private const int Batch = 64;

    private readonly SafeSocketHandle _socket;
    private readonly byte[] _send = new byte[Batch * CtNetlinkCodec.MaxRequestLength];
    private readonly byte[] _receive = new byte[8192];
    private uint _sequence;

    private CtNetlinkSocket(SafeSocketHandle socket)
    {
        _socket = socket;
        _sequence = (uint)Environment.TickCount;
    }

    /// <summary>Opens the socket in the calling thread's network namespace.</summary>
    public static CtNetlinkSocket Open() => new(NetlinkSockets.Open(NETLINK_NETFILTER, "NETLINK_NETFILTER", AckTimeout));

    /// <summary>Deletes each flow's entry (found by the flow's tuple); a failed send or a lost ack is an IOException.</summary>
    public ConntrackDeletes Delete(IReadOnlyCollection<FlowTuple> flows)
    {
        ArgumentNullException.ThrowIfNull(flows);
        int deleted = 0, missing = 0, errors = 0;
        foreach (var chunk in flows.Chunk(Batch))
        {
            uint first = unchecked(_sequence + 1);
            int length = 0;
            foreach (var flow in chunk)
            {
                length += CtNetlinkCodec.WriteDeleteRequest(_send.AsSpan(length), unchecked(++_sequence), flow);
            }
            if (send(_socket, _send.AsSpan(0, length), (nuint)length, 0) != length)
            {
                throw new IOException($"netlink send IPCTNL_MSG_CT_DELETE: {Errno.Name(Marshal.GetLastPInvokeError())}");
            }
            var answered = new HashSet<uint>();
            while (answered.Count < chunk.Length)
            {
                int n = NetlinkSockets.Receive(_socket, _receive, AckTimeout, "IPCTNL_MSG_CT_DELETE");
                var data = _receive.AsSpan(0, n);
                while (!data.IsEmpty)
                {
                    var status = RtNetlinkCodec.TryReadAck(data, out uint sequence, out int errno, out int consumed);
                    if (status == NetlinkAckStatus.Invalid)
                    {
                        throw new IOException("netlink IPCTNL_MSG_CT_DELETE: malformed reply");
                    }
                    data = data[consumed..];
                    // An ack of a request of this chunk, counted once.
                    if (status == NetlinkAckStatus.OtherMessage || unchecked(sequence - first) >= (uint)chunk.Length || !answered.Add(sequence))
                    {
                        continue;
                    }
                    if (status == NetlinkAckStatus.Ok)
                    {
                        deleted++;
                    }
                    else if (errno == Errno.ENOENT)
                    {
                        missing++;
                    }
                    else
                    {
                        errors++;
                    }
                }
            }
        }
        return new ConntrackDeletes(deleted, missing, errors);
    }

    public void Dispose() => _socket.Dispose();
}
