using System.Net;
using System.Net.Sockets;
using System.Text;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>UDP ASSOCIATE (python3-socks) and BIND (raw client plus ncat on the target).</summary>
[Collection(ProxyLabGroup.Name)]
public sealed class UdpAndBindTests(ProxyLabFixture lab)
{
    private const string UdpClient = """
        import socket, sys, socks
        s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
        s.set_proxy(socks.SOCKS5, "198.18.1.1", 1080)
        s.settimeout(3)
        ok = 0
        for i in range(20):
            msg = f"datagram {i} via udp associate".encode()
            s.sendto(msg, ("198.18.2.2", int(sys.argv[1])))
            data, peer = s.recvfrom(2048)
            ok += data == msg
        print(f"echoed {ok}/20")
        """;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task UdpAssociate_TwentyDatagrams_AllEchoed()
    {
        ProxyUnderTest.SkipWhere("UDP ASSOCIATE", ProxyKind.Microsocks);
        var result = await RunUdpClientAsync(UdpClient, "udpclient");

        Assert.True(result.Succeeded, $"{result}\n{lab.Describe()}");
        Assert.Equal("echoed 20/20", result.StdOut.Trim());
    }

    /// <summary>
    /// Destinations alternate between an address and a name (different header bytes; the name may
    /// resolve to the target's other family), so the relay's remembered destination and reply header
    /// change often: each reply must still carry its data and name the target address it came from.
    /// </summary>
    private const string UdpAlternatingClient = """
        import socket, sys, socks
        s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
        s.set_proxy(socks.SOCKS5, "198.18.1.1", 1080)
        s.settimeout(3)
        port = int(sys.argv[1])
        ok = 0
        for i in range(30):
            msg = f"datagram {i} of many".encode() * (1 + i % 4)
            s.sendto(msg, ("198.18.2.2" if i % 3 else "target.lab", port))
            data, peer = s.recvfrom(4096)
            # The name may resolve to the target's IPv6 address: then the reply comes from there.
            sources = ["198.18.2.2"] if i % 3 else ["198.18.2.2", "fdc6:1200:2::2"]
            ok += data == msg and peer[0] in sources and peer[1] == port
        print(f"echoed {ok}/30")
        """;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task UdpAssociate_AlternatingDestinationForms_EveryReplyNamesTheTarget()
    {
        ProxyUnderTest.SkipWhere("UDP ASSOCIATE", ProxyKind.Microsocks);
        var result = await RunUdpClientAsync(UdpAlternatingClient, "udpalternating");

        Assert.True(result.Succeeded, $"{result}\n{lab.Describe()}");
        Assert.Equal("echoed 30/30", result.StdOut.Trim());
    }

    /// <summary>Runs a python3-socks UDP client script on the client host against the target's UDP echo.</summary>
    private async Task<LabRunResult> RunUdpClientAsync(string code, string directory)
    {
        var python = LabBinaries.RequirePythonSocks();
        var script = Path.Combine(lab.Lab.Network.CreateTempDirectory(directory), "udp.py");
        await File.WriteAllTextAsync(script, code);
        return await lab.Lab.Client.RunAsync(python, [script, $"{TargetServers.UdpEchoPort}"], TimeSpan.FromSeconds(30)).WithTimeout(TimeSpan.FromSeconds(40));
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Bind_TargetConnectsBack_SecondReplyNamesItAndDataFlowsBothWays()
    {
        ProxyUnderTest.SkipWhere("BIND", ProxyKind.Microsocks);
        using var socket = await lab.Lab.Client.ConnectTcpAsync(new IPEndPoint(ProxyLab.ProxyInsideV4, ProxyLabFixture.MainPort), TimeSpan.FromSeconds(5)).WithTimeout();
        var (code, bound) = await Socks5Client.HandshakeAsync(socket, Socks5Client.Bind, new IPEndPoint(ProxyLab.TargetV4, 0)).WithTimeout();
        Assert.True(code == 0, $"first BIND reply {code}\n{lab.Describe()}");
        Assert.NotEqual(0, bound.Port);
        var connectTo = bound.Address.Equals(IPAddress.Any) ? ProxyLab.ProxyOutsideV4 : bound.Address;

        // The target connects to the announced address; --no-shutdown keeps it reading after its own data.
        var ncat = lab.Lab.Target.RunAsync(lab.Ncat, ["--no-shutdown", connectTo.ToString(), $"{bound.Port}"], TimeSpan.FromSeconds(20), "from-target\n");

        var (code2, peer) = await Socks5Client.ReadReplyAsync(socket).WithTimeout(TimeSpan.FromSeconds(15));
        Assert.True(code2 == 0, $"second BIND reply {code2}\n{lab.Describe()}");
        Assert.Equal(ProxyLab.TargetV4, peer.Address);
        var fromTarget = await Socks5Client.ReadExactlyAsync(socket, "from-target\n".Length).WithTimeout();
        Assert.Equal("from-target\n", Encoding.ASCII.GetString(fromTarget));

        await socket.SendAsync(Encoding.ASCII.GetBytes("from-client\n")).WithTimeout();
        socket.Shutdown(SocketShutdown.Send);
        var result = await ncat.WithTimeout();

        Assert.True(result.StdOut.Contains("from-client", StringComparison.Ordinal), $"{result}\n{lab.Describe()}");
    }
}
