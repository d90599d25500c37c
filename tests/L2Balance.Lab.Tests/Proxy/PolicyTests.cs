using System.Net;
using System.Net.Sockets;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>Negotiate timeout, RFC 1929 users and sockd.conf block rules.</summary>
[Collection(ProxyLabGroup.Name)]
public sealed class PolicyTests(ProxyLabFixture lab)
{
    private static readonly string KnownUrl = $"http://198.18.2.2:{TargetServers.HttpPort}/{TargetServers.KnownFileName}";

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task NegotiateTimeout_SilentClient_IsClosedWhileAnotherConnects()
    {
        ProxyUnderTest.SkipWhere("a negotiate timeout", ProxyKind.Microsocks);
        using var silent = await lab.Lab.Client.ConnectTcpAsync(new IPEndPoint(ProxyLab.ProxyInsideV4, ProxyLabFixture.MainPort), TimeSpan.FromSeconds(5)).WithTimeout();

        var other = await lab.CurlAsync("--socks5", "198.18.1.1:1080", KnownUrl);
        Assert.True(other.Succeeded, $"{other}\n{lab.Describe()}");

        // The negotiate timeout is 2 s; 15 s is only the deadline of this await.
        int received;
        try
        {
            received = await silent.ReceiveAsync(new byte[16].AsMemory()).AsTask().WithTimeout(TimeSpan.FromSeconds(15));
        }
        catch (SocketException)
        {
            received = 0; // a reset also means the proxy closed it
        }
        catch (TimeoutException)
        {
            received = -1;
        }

        Assert.True(received == 0, $"silent client not closed by the proxy (receive returned {received})\n{lab.Describe()}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task UsernamePassword_OnlyTheRightPassword_Connects()
    {
        const int port = 1081;
        using var proxy = await lab.StartUsersInstanceAsync(port, "alice", "s3cret-lab");

        var good = await lab.CurlAsync("--socks5", $"198.18.1.1:{port}", "--proxy-user", "alice:s3cret-lab", KnownUrl);
        var bad = await lab.CurlAsync("--socks5", $"198.18.1.1:{port}", "--proxy-user", "alice:wrong", KnownUrl);
        var none = await lab.CurlAsync("--socks5", $"198.18.1.1:{port}", KnownUrl);

        Assert.True(good.Succeeded && good.StdOut == lab.Servers.KnownFileContent, $"right password: {good}\n{proxy.Describe()}");
        Assert.False(bad.Succeeded, $"wrong password was accepted: {bad}\n{proxy.Describe()}");
        Assert.False(none.Succeeded, $"no credentials were accepted: {none}\n{proxy.Describe()}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task SocksBlockRule_BlockedPort_IsRefusedWhileOthersPass()
    {
        const int port = 1082;
        using var proxy = await lab.StartConfigInstanceAsync(port, """
            internal: 198.18.1.1 port = 1082
            external: 198.18.2.1
            client pass { from: 0/0 to: 0/0 }
            socks block { from: 0/0 to: 198.18.2.2/32 port = 8081 log: error }
            socks pass { from: 0/0 to: 0/0 }

            """);

        var blocked = await lab.CurlAsync("--socks5", $"198.18.1.1:{port}", $"http://198.18.2.2:{TargetServers.HttpPort2}/{TargetServers.KnownFileName}");
        var passed = await lab.CurlAsync("--socks5", $"198.18.1.1:{port}", KnownUrl);

        using var raw = await lab.Lab.Client.ConnectTcpAsync(new IPEndPoint(ProxyLab.ProxyInsideV4, port), TimeSpan.FromSeconds(5)).WithTimeout();
        var (code, _) = await Socks5Client.HandshakeAsync(raw, Socks5Client.Connect, new IPEndPoint(ProxyLab.TargetV4, TargetServers.HttpPort2)).WithTimeout();

        Assert.False(blocked.Succeeded, $"blocked destination was reached: {blocked}\n{proxy.Describe()}");
        Assert.True(code == 2, $"raw CONNECT to the blocked port: reply {code}, want 2 (not allowed by ruleset)\n{proxy.Describe()}");
        Assert.True(passed.Succeeded && passed.StdOut == lab.Servers.KnownFileContent, $"other port: {passed}\n{proxy.Describe()}");
    }
}
