using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Migration;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// What a restored copy sends while it waits for Go (docs/design.md#the-pause), on this process's loopback (no lab, no
/// address): a socket in repair mode retransmits the bytes restored as sent when its timer fires, so the new node's silent
/// copies get theirs only at Go (<see cref="TcpRepair.RestoreSentQueue"/>) and send nothing before. Needs CAP_NET_ADMIN.
/// </summary>
public sealed class RestoredTimerTests
{
    /// <summary>struct tcp_info: tcpi_total_retrans (include/uapi/linux/tcp.h).</summary>
    private const int TotalRetransOffset = 100;

    [Fact]
    public async Task Restore_SentBytesLeftForGo_SendsNothingWhileACopyWithThemRetransmits()
    {
        // A connection to this address first: its cached metrics give restored sockets the short timer a node has for ends it served.
        using (var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await client.ConnectAsync(listener.LocalEndPoint!);
            using var server = await listener.AcceptAsync();
            await client.SendAsync(new byte[1000], SocketFlags.None);
            await server.ReceiveAsync(new byte[1000], SocketFlags.None);
        }

        using var deferred = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var whole = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        // Toward a port nothing listens on: only the restored sockets' own timers can make them send.
        TcpRepair.Restore(deferred, Leg(), sentQueue: false);
        TcpRepair.Restore(whole, Leg(), sentQueue: true);
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
            while (TotalRetrans(whole) == 0 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }

            Assert.True(TotalRetrans(whole) > 0, "the copy restored with its sent bytes never retransmitted: the test cannot tell anything");
            Assert.Equal(0u, TotalRetrans(deferred));
        }
        finally
        {
            TcpRepair.CloseFrozen(deferred);
            TcpRepair.CloseFrozen(whole);
        }
    }

    private static TcpLegState Leg()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var local = (IPEndPoint)probe.LocalEndPoint!;
        probe.Dispose();
        const uint recvSeq = 5000;
        return new TcpLegState(local, new IPEndPoint(IPAddress.Loopback, 9), 1100, recvSeq, new byte[100], 0, [], 1460,
            TcpLegOptions.None, 0, 0, 0, new TcpLegWindow(recvSeq, 65535, 65535, 65535, recvSeq));
    }

    private static uint TotalRetrans(Socket socket)
    {
        Span<byte> info = stackalloc byte[232];
        var length = socket.GetRawSocketOption(6, 11, info); // SOL_TCP, TCP_INFO
        return length >= TotalRetransOffset + 4 ? BinaryPrimitives.ReadUInt32LittleEndian(info[TotalRetransOffset..]) : 0;
    }
}
