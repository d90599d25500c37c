using System.Net;
using System.Net.Sockets;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// The checked stream's own diagnostics, over loopback in this process (no lab): a wrong byte is traced to where it
/// came from, so a failing migration test says whether bytes were reordered, repeated or taken from another stream.
/// </summary>
public sealed class StreamCheckTests
{
    [Fact]
    public async Task Classify_TwoChunksSwappedOnTheWay_NamesEachRunAndItsShift()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4);
        using var writer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await writer.ConnectAsync(listener.LocalEndPoint!);
        using var relayIn = await listener.AcceptAsync();
        using var relayOut = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await relayOut.ConnectAsync(listener.LocalEndPoint!);
        using var reader = await listener.AcceptAsync();
        using var stop = new CancellationTokenSource();

        var check = new StreamCheck(writer, reader, 40_000, new StreamPace(1024, TimeSpan.FromMilliseconds(1)), stop.Token, "up");
        // The relay passes 8 KiB with the chunks at 4 KiB and 5 KiB swapped, then the rest as it comes.
        var first = new byte[8192];
        for (var read = 0; read < first.Length;)
        {
            read += await relayIn.ReceiveAsync(first.AsMemory(read), SocketFlags.None);
        }
        await SendAllAsync(relayOut, first.AsMemory(0, 4096));
        await SendAllAsync(relayOut, first.AsMemory(5120, 1024));
        await SendAllAsync(relayOut, first.AsMemory(4096, 1024));
        await SendAllAsync(relayOut, first.AsMemory(6144, 2048));
        await stop.CancelAsync();
        var rest = new byte[65536];
        int n;
        while ((n = await relayIn.ReceiveAsync(rest, SocketFlags.None)) > 0)
        {
            await SendAllAsync(relayOut, rest.AsMemory(0, n));
        }
        relayOut.Shutdown(SocketShutdown.Send);
        await check.Completion.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(check.Sent, check.Received);
        Assert.Equal(4096, check.Mismatch);
        var classified = check.Classify();
        Assert.StartsWith("[4096, +1024) this stream@5120 (shift +1024); [5120, +1024) this stream@4096 (shift -1024); [6144, +", classified);
        Assert.Contains(") in place", classified);
        Assert.Contains("from the mismatch: [4096", check.ToString());
    }

    private static async Task SendAllAsync(Socket to, ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            bytes = bytes[await to.SendAsync(bytes, SocketFlags.None)..];
        }
    }
}
