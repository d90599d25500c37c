using System.Net;
using System.Net.Sockets;
using System.Text;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>CONNECT through the proxy: curl with every SOCKS flavour, ncat, a raw client, IPv6.</summary>
[Collection(ProxyLabGroup.Name)]
public sealed class ConnectTests(ProxyLabFixture lab)
{
    private static readonly string ByName = $"http://{ProxyLab.TargetName}:{TargetServers.HttpPort}/{TargetServers.KnownFileName}";
    /// <summary>microsocks closes both directions when the client shuts down its sending side.</summary>
    internal const string HalfClose = "half-close (a client's shutdown of its sending side, relayed while the answer flows)";

    private static readonly string ByIp = $"http://198.18.2.2:{TargetServers.HttpPort}/{TargetServers.KnownFileName}";

    [SkippableTheory(typeof(LabUnavailableException))]
    [InlineData("--socks5-hostname", "name")]
    [InlineData("--socks5-hostname", "ip")]
    [InlineData("--socks5", "ip")]
    [InlineData("--socks4a", "name")]
    [InlineData("--socks4", "ip")]
    public async Task Curl_EverySocksFlavour_FetchesKnownFile(string flavour, string target)
    {
        if (flavour.StartsWith("--socks4", StringComparison.Ordinal))
        {
            ProxyUnderTest.SkipWhere("SOCKS4", ProxyKind.Microsocks);
        }

        if (flavour == "--socks4a")
        {
            // Dante answers a SOCKS4a request (a host name) with 91, request rejected.
            ProxyUnderTest.SkipWhere("SOCKS4a", ProxyKind.Sockd);
        }

        var result = await lab.CurlAsync(flavour, "198.18.1.1:1080", target == "name" ? ByName : ByIp);

        AssertFetched(result);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Curl_Ipv6Target_FetchesKnownFile()
    {
        var result = await lab.CurlAsync("-g", "--socks5", "198.18.1.1:1080", $"http://[fdc6:1200:2::2]:{TargetServers.HttpPort}/{TargetServers.KnownFileName}");

        AssertFetched(result);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Curl_OverIpv6Listener_FetchesKnownFile()
    {
        ProxyUnderTest.SkipWhere("a second (IPv6) listening address: microsocks listens on one", ProxyKind.Microsocks);
        var result = await lab.CurlAsync("-g", "--socks5-hostname", "[fdc6:1200:1::1]:1080", $"http://[fdc6:1200:2::2]:{TargetServers.HttpPort}/{TargetServers.KnownFileName}");

        AssertFetched(result);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Ncat_TcpEcho_RoundTripsPayloadAcrossHalfClose()
    {
        ProxyUnderTest.SkipWhere(HalfClose, ProxyKind.Microsocks);
        // ncat sends stdin, half-closes on its EOF and keeps reading: the echo must still arrive.
        var payload = string.Concat(Enumerable.Range(0, 4000).Select(i => $"line {i:D5} of the ncat payload\n"));

        var result = await lab.Lab.Client.RunAsync(lab.Ncat,
            ["--proxy", "198.18.1.1:1080", "--proxy-type", "socks5", "198.18.2.2", $"{TargetServers.TcpEchoPort}"],
            TimeSpan.FromSeconds(20), payload).WithTimeout();

        Assert.True(result.Succeeded, $"{result}\n{lab.Describe()}");
        Assert.True(payload == result.StdOut, $"echo differs: sent {payload.Length} bytes, got {result.StdOut.Length}\n{lab.Describe()}");
    }

    [SkippableTheory(typeof(LabUnavailableException))]
    [InlineData("198.18.2.2")]
    [InlineData("fdc6:1200:2::2")]
    public async Task RawClient_ShutdownWrite_StillReceivesWholeEcho(string target)
    {
        ProxyUnderTest.SkipWhere(HalfClose, ProxyKind.Microsocks);
        using var socket = await lab.Lab.Client.ConnectTcpAsync(new IPEndPoint(ProxyLab.ProxyInsideV4, ProxyLabFixture.MainPort), TimeSpan.FromSeconds(5)).WithTimeout();
        var (code, _) = await Socks5Client.HandshakeAsync(socket, Socks5Client.Connect, new IPEndPoint(IPAddress.Parse(target), TargetServers.TcpEchoPort)).WithTimeout();
        Assert.True(code == 0, $"CONNECT reply {code}\n{lab.Describe()}");

        var payload = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("half-close payload ", 10000)));
        await socket.SendAsync(payload).WithTimeout();
        socket.Shutdown(SocketShutdown.Send);
        var echoed = await Socks5Client.ReadToEndAsync(socket).WithTimeout();

        Assert.True(payload.AsSpan().SequenceEqual(echoed), $"sent {payload.Length} bytes, echoed {echoed.Length}\n{lab.Describe()}");
    }

    private void AssertFetched(LabRunResult result)
    {
        Assert.True(result.Succeeded, $"{result}\n{lab.Describe()}");
        Assert.True(lab.Servers.KnownFileContent == result.StdOut, $"content differs ({result.StdOut.Length} bytes)\n{lab.Describe()}");
    }
}
