using System.Net;
using System.Net.Sockets;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// Bad input of any kind closes that session only: the proxy answers what RFC 1928 says it must
/// (unknown command → 7, unknown address type → 8), drops garbage, never crashes, and keeps serving.
/// </summary>
[Collection(ProxyLabGroup.Name)]
public sealed class MalformedInputTests(ProxyLabFixture lab)
{
    private static readonly string KnownUrl = $"http://198.18.2.2:{TargetServers.HttpPort}/{TargetServers.KnownFileName}";
    private static readonly IPEndPoint Proxy = new(ProxyLab.ProxyInsideV4, ProxyLabFixture.MainPort);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Request_UnknownCommandOrAddressType_GetsReply7Or8()
    {
        // Dante closes the connection without a reply.
        ProxyUnderTest.SkipWhere("replies 7 and 8 (RFC 1928 section 6) to an unknown command or address type", ProxyKind.Sockd);
        using (var socket = await lab.Lab.Client.ConnectTcpAsync(Proxy, TimeSpan.FromSeconds(5)).WithTimeout())
        {
            await Socks5Client.NegotiateNoAuthAsync(socket).WithTimeout();
            await socket.SendAsync(new byte[] { 5, 9, 0, 1, 198, 18, 2, 2, 0, 80 });
            var reply = await Socks5Client.ReadExactlyAsync(socket, 2).WithTimeout();
            Assert.Equal(new byte[] { 5, 7 }, reply);
        }
        using (var socket = await lab.Lab.Client.ConnectTcpAsync(Proxy, TimeSpan.FromSeconds(5)).WithTimeout())
        {
            await Socks5Client.NegotiateNoAuthAsync(socket).WithTimeout();
            await socket.SendAsync(new byte[] { 5, 1, 0, 9, 198, 18, 2, 2, 0, 80 });
            var reply = await Socks5Client.ReadExactlyAsync(socket, 2).WithTimeout();
            Assert.Equal(new byte[] { 5, 8 }, reply);
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Garbage_FromManyClients_ClosesThoseSessionsOnly()
    {
        var random = new Random(1928);
        var prefixes = new byte[][] { [], [5], [5, 1], [5, 1, 0], [4, 1], [5, 2, 0, 2], [1] };
        for (var i = 0; i < 150; i++)
        {
            using var socket = await lab.Lab.Client.ConnectTcpAsync(Proxy, TimeSpan.FromSeconds(5)).WithTimeout();
            var prefix = prefixes[i % prefixes.Length];
            var garbage = new byte[random.Next(1, 600)];
            random.NextBytes(garbage);
            try
            {
                await socket.SendAsync(prefix.Concat(garbage).ToArray());
                socket.Shutdown(SocketShutdown.Send);
                // Whatever the proxy answers, it must end the session (EOF or reset), not hang.
                var buffer = new byte[1024];
                while (await socket.ReceiveAsync(buffer.AsMemory()).AsTask().WithTimeout(TimeSpan.FromSeconds(10)) > 0)
                {
                }
            }
            catch (SocketException)
            {
                // A reset is a clean rejection too.
            }
        }

        Assert.False(lab.MainProxy.HasExited, $"the proxy died on malformed input\n{lab.Describe()}");
        var served = await lab.CurlAsync("--socks5-hostname", "198.18.1.1:1080", KnownUrl);
        Assert.True(served.Succeeded && served.StdOut == lab.Servers.KnownFileContent, $"after garbage: {served}\n{lab.Describe()}");
    }
}
