using System.Net;
using System.Net.Sockets;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>--max-per-client and --max-udp: the client over the limit is refused, the others are served.</summary>
[Collection(ProxyLabGroup.Name)]
public sealed class LimitsTests(ProxyLabFixture lab)
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(10);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task MaxPerClient_ClientOverTheLimit_IsClosedWhileOthersAreServed()
    {
        ProxyUnderTest.SkipUnlessL2Proxy("--max-per-client");
        const int port = 1083;
        using var proxy = await StartAsync(port, "--max-per-client", "2");
        var endPoint = new IPEndPoint(ProxyLab.ProxyInsideV4, port);
        using var first = await lab.Lab.Client.ConnectTcpAsync(endPoint, Step).WithTimeout();
        using var second = await lab.Lab.Client.ConnectTcpAsync(endPoint, Step).WithTimeout();
        await Socks5Client.NegotiateNoAuthAsync(first).WithTimeout();
        await Socks5Client.NegotiateNoAuthAsync(second).WithTimeout();

        using var third = await lab.Lab.Client.ConnectTcpAsync(endPoint, Step).WithTimeout();
        Assert.True(await ClosedByProxyAsync(third), $"a third session from one address was served\n{proxy.Describe()}");

        first.Dispose();
        // Once a slot is free, the same address is served again (poll: the proxy sees the close asynchronously).
        var served = false;
        for (var attempt = 0; attempt < 50 && !served; attempt++)
        {
            using var again = await lab.Lab.Client.ConnectTcpAsync(endPoint, Step).WithTimeout();
            try
            {
                await Socks5Client.NegotiateNoAuthAsync(again).WithTimeout();
                served = true;
            }
            catch (Exception e) when (e is SocketException or IOException or InvalidDataException or TimeoutException)
            {
                await Task.Delay(100);
            }
        }
        Assert.True(served, $"the address was not served again after a session closed\n{proxy.Describe()}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task MaxUdp_AssociationOverTheLimit_GetsGeneralFailure()
    {
        ProxyUnderTest.SkipUnlessL2Proxy("--max-udp");
        const int port = 1084;
        using var proxy = await StartAsync(port, "--max-udp", "1");
        var endPoint = new IPEndPoint(ProxyLab.ProxyInsideV4, port);
        using var first = await lab.Lab.Client.ConnectTcpAsync(endPoint, Step).WithTimeout();
        var (firstCode, _) = await Socks5Client.HandshakeAsync(first, Socks5Client.UdpAssociate, new IPEndPoint(IPAddress.Any, 0)).WithTimeout();

        using var second = await lab.Lab.Client.ConnectTcpAsync(endPoint, Step).WithTimeout();
        var (secondCode, _) = await Socks5Client.HandshakeAsync(second, Socks5Client.UdpAssociate, new IPEndPoint(IPAddress.Any, 0)).WithTimeout();

        Assert.True(firstCode == 0, $"first association: reply {firstCode}\n{proxy.Describe()}");
        Assert.True(secondCode == 1, $"association over the limit: reply {secondCode}, want 1 (general failure)\n{proxy.Describe()}");
    }

    /// <summary>
    /// timeout.connect is enforced by the server's sweep (no timer per connect): a connect to a host
    /// that never answers (a permanent neighbour entry to a MAC nobody has, so SYNs vanish) ends
    /// with reply 6 (TTL expired, the mapping of a timed-out connect), and the session is closed.
    /// </summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect_ToASilentHost_RepliesTtlExpired()
    {
        ProxyUnderTest.SkipUnlessL2Proxy("--connect-timeout");
        const int port = 1086;
        var silent = IPAddress.Parse("198.18.2.77");
        var neigh = await lab.Lab.Proxy.RunAsync("ip", ["neigh", "replace", silent.ToString(), "lladdr", "02:00:00:00:00:77", "dev", "eth1", "nud", "permanent"], Step);
        Assert.True(neigh.Succeeded, neigh.ToString());
        using var proxy = await StartAsync(port, "--connect-timeout", "1s");
        using var socket = await lab.Lab.Client.ConnectTcpAsync(new IPEndPoint(ProxyLab.ProxyInsideV4, port), Step).WithTimeout();
        var (code, _) = await Socks5Client.HandshakeAsync(socket, Socks5Client.Connect, new IPEndPoint(silent, 80)).WithTimeout(Step);

        Assert.True(code == 6, $"reply {code}, expected 6 (TTL expired)\n{proxy.Describe()}");
        Assert.Empty(await Socks5Client.ReadToEndAsync(socket).WithTimeout());
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Allow_LocalHealthCheck_IsAdmittedWhileOutsideClientsAreRefused()
    {
        ProxyUnderTest.SkipUnlessL2Proxy("--allow with the local health check admitted");
        const int port = 1085;
        var endPoint = new IPEndPoint(ProxyLab.ProxyInsideV4, port);
        var process = lab.Lab.Proxy.Start(LabBinaries.L2Proxy,
            ["--listen", $"198.18.1.1:{port}", "--external", "198.18.2.1", "--allow", "198.18.99.0/24"]);
        using var proxy = process;
        await lab.Lab.Proxy.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, port, Step, lab.Describe, process).WithTimeout(Step * 2);

        // From the proxy host itself (source = the listening address), as l2bal's probe connects.
        using var local = await lab.Lab.Proxy.ConnectTcpAsync(endPoint, Step).WithTimeout();
        await Socks5Client.NegotiateNoAuthAsync(local).WithTimeout();

        using var outside = await lab.Lab.Client.ConnectTcpAsync(endPoint, Step).WithTimeout();
        Assert.True(await ClosedByProxyAsync(outside), $"a client outside --allow was served\n{proxy.Describe()}");
    }

    private async Task<LabProcess> StartAsync(int port, params string[] limits)
    {
        var process = lab.Lab.Proxy.Start(LabBinaries.L2Proxy,
            ["--listen", $"198.18.1.1:{port}", "--external", "198.18.2.1", "--allow", "198.18.1.0/24", .. limits]);
        await lab.Lab.Client.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, port, Step, lab.Describe, process).WithTimeout(Step * 2);
        return process;
    }

    /// <summary>True when the proxy ends the session (EOF or reset) instead of answering the greeting.</summary>
    private static async Task<bool> ClosedByProxyAsync(Socket socket)
    {
        try
        {
            await Socks5Client.NegotiateNoAuthAsync(socket).WithTimeout(Step);
            return false;
        }
        catch (Exception e) when (e is EndOfStreamException or SocketException)
        {
            return true;
        }
    }
}
