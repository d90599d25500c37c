using System.Net.Sockets;
using System.Runtime.InteropServices;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Net;

/// <summary>
/// A NETLINK_NETFILTER socket that reads a table's counter objects (<see cref="NftObjCodec"/>), in the network namespace
/// of the thread that opened it. Not thread-safe: one reader at a time.
/// </summary>
internal sealed class NftObjSocket : IDisposable
{
    /// <summary>The kernel answers at once; this only bounds a lost answer.</summary>
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(2);

    private readonly SafeSocketHandle _socket;
    private readonly byte[] _send = new byte[NftObjCodec.MaxRequestLength];

    /// <summary>A dump datagram: the kernel fills up to about 32 KiB (its dump buffer); a larger one is an IOException (MSG_TRUNC).</summary>
    private readonly byte[] _receive = new byte[64 * 1024];
    private uint _sequence;

    private NftObjSocket(SafeSocketHandle socket)
    {
        _socket = socket;
        _sequence = (uint)Environment.TickCount;
    }

    /// <summary>Opens the socket in the calling thread's network namespace.</summary>
    public static NftObjSocket Open() => new(NetlinkSockets.Open(NETLINK_NETFILTER, "NETLINK_NETFILTER", ReplyTimeout));

    /// <summary>
    /// The packet counts of table <paramref name="table"/>'s counters, by name; IOException when the kernel refuses, the
    /// answer is malformed or there is none (the table is gone).
    /// </summary>
    public Dictionary<string, long> Counters(string family, string table)
    {
        var sequence = unchecked(++_sequence);
        var length = NftObjCodec.WriteCounterDump(_send, NftObjCodec.Family(family), table, sequence);
        if (send(_socket, _send.AsSpan(0, length), (nuint)length, 0) != length)
        {
            throw new IOException($"netlink send NFT_MSG_GETOBJ: {Errno.Name(Marshal.GetLastPInvokeError())}");
        }
        var packets = new Dictionary<string, long>(StringComparer.Ordinal);
        while (true)
        {
            int n = NetlinkSockets.Receive(_socket, _receive, ReplyTimeout, "NFT_MSG_GETOBJ");
            switch (NftObjCodec.Read(_receive.AsSpan(0, n), sequence, table, packets, out var errno))
            {
                case NetlinkDumpStatus.Done:
                    // A dump filtered by a table that is gone is empty, not an error; l2bal's tables always hold counters.
                    return packets.Count > 0 ? packets : throw new IOException($"no counters in table {family} {table}: the table is gone");
                case NetlinkDumpStatus.Error:
                    throw new IOException($"netlink NFT_MSG_GETOBJ {family} {table}: {Errno.Name(errno)}");
                case NetlinkDumpStatus.Invalid:
                    throw new IOException("netlink NFT_MSG_GETOBJ: malformed reply");
            }
        }
    }

    public void Dispose() => _socket.Dispose();
}
