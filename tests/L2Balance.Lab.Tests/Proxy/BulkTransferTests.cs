using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// A bulk stream through the relay (splice path in l2proxy): 64 MiB of seeded random bytes up to the
/// TCP echo and the same back, sent and received concurrently so back-pressure works both ways,
/// then a half-close; SHA-256 of what came back must equal that of what was sent.
/// </summary>
[Collection(ProxyLabGroup.Name)]
public sealed class BulkTransferTests(ProxyLabFixture lab)
{
    private const int TotalBytes = 64 * 1024 * 1024;
    private const int ChunkBytes = 256 * 1024;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Echo_64MiBBothWays_ChecksumsMatch()
    {
        ProxyUnderTest.SkipWhere(ConnectTests.HalfClose, ProxyKind.Microsocks);
        using var socket = await lab.Lab.Client.ConnectTcpAsync(new IPEndPoint(ProxyLab.ProxyInsideV4, ProxyLabFixture.MainPort), TimeSpan.FromSeconds(5)).WithTimeout();
        var (code, _) = await Socks5Client.HandshakeAsync(socket, Socks5Client.Connect, new IPEndPoint(ProxyLab.TargetV4, TargetServers.TcpEchoPort)).WithTimeout();
        Assert.True(code == 0, $"CONNECT reply {code}\n{lab.Describe()}");

        var send = SendAsync(socket);
        var receive = ReceiveAsync(socket);
        var sentHash = await send.WithTimeout(TimeSpan.FromSeconds(60));
        var (receivedBytes, receivedHash) = await receive.WithTimeout(TimeSpan.FromSeconds(60));

        Assert.True(receivedBytes == TotalBytes, $"echoed {receivedBytes} of {TotalBytes} bytes\n{lab.Describe()}");
        Assert.Equal(Convert.ToHexString(sentHash), Convert.ToHexString(receivedHash));
    }

    private static async Task<byte[]> SendAsync(Socket socket)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var random = new Random(20261125);
        var chunk = new byte[ChunkBytes];
        for (int sent = 0; sent < TotalBytes; sent += chunk.Length)
        {
            random.NextBytes(chunk);
            hash.AppendData(chunk);
            await socket.SendAsync(chunk, SocketFlags.None);
        }

        socket.Shutdown(SocketShutdown.Send);
        return hash.GetHashAndReset();
    }

    private static async Task<(long Bytes, byte[] Hash)> ReceiveAsync(Socket socket)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[ChunkBytes];
        long total = 0;
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (n == 0)
            {
                return (total, hash.GetHashAndReset());
            }

            hash.AppendData(buffer, 0, n);
            total += n;
        }
    }
}
