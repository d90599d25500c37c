using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// l2proxy safe by default (issue 13): no open proxy, no relay into the node itself, every resolved
/// address checked, local clients under the client rules, and a quiet health probe
/// (docs/sockd-conf.md). Facts come from reply codes, listeners and the metrics.
/// </summary>
[Collection(ProxyLabGroup.Name)]
public sealed class DefaultPolicyTests(ProxyLabFixture lab)
{
    private const string Feature = "l2proxy's default policy";

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task ListenOnly_WithoutClientPolicy_RefusesToStartWithUsageExit()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(Feature);

        // 192.0.2.1 is no address of this host: a proxy that started would fail to bind (exit 1).
        var (code, _, stderr) = await PublishedProgram.RunAsync(LabBinaries.L2Proxy, "--listen", "192.0.2.1:1080");

        Assert.True(code == 64, $"exit {code}, want 64 (usage): {stderr}");
        Assert.Contains("--allow", stderr, StringComparison.Ordinal);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect_ToProxyHostLoopbackAndOwnAddresses_IsRefusedWithReply2()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(Feature);
        using var loopback = Listen(lab.Lab.Proxy, new IPEndPoint(IPAddress.Loopback, 18080));
        using var outer = Listen(lab.Lab.Proxy, new IPEndPoint(ProxyLab.ProxyOutsideV4, 18081));
        var before = await ScrapeAsync(ProxyLabFixture.MetricsPort);

        var toLoopback = await ConnectCodeAsync(ProxyLabFixture.MainPort, new IPEndPoint(IPAddress.Loopback, 18080));
        var toMapped = await ConnectCodeAsync(ProxyLabFixture.MainPort, new IPEndPoint(IPAddress.Parse("::ffff:127.0.0.1"), 18080));
        var toOuter = await ConnectCodeAsync(ProxyLabFixture.MainPort, new IPEndPoint(ProxyLab.ProxyOutsideV4, 18081));
        var curlLoopback = await lab.CurlAsync("--socks5", "198.18.1.1:1080", "http://127.0.0.1:18080/");
        var curlOuter = await lab.CurlAsync("--socks4a", "198.18.1.1:1080", "http://198.18.2.1:18081/");
        var after = await ScrapeAsync(ProxyLabFixture.MetricsPort);

        var why = lab.Describe();
        Assert.True((toLoopback, toMapped, toOuter) == (2, 2, 2), $"replies {toLoopback}, {toMapped}, {toOuter}; want 2 (not allowed by ruleset)\n{why}");
        Assert.False(curlLoopback.Succeeded || curlOuter.Succeeded, $"curl reached the proxy host: {curlLoopback}\n{curlOuter}\n{why}");
        Assert.False(HasPending(loopback) || HasPending(outer), $"a protected listener saw a connection\n{why}");
        Assert.True(Refused(after, "Loopback") - Refused(before, "Loopback") >= 3, $"loopback refusals not counted\n{why}");
        Assert.True(Refused(after, "NodeAddress") - Refused(before, "NodeAddress") >= 2, $"node address refusals not counted\n{why}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect_ToAnAddressAddedToTheNodeLater_IsRefusedOnceItIsThere()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(Feature);
        // As l2bal puts the VIP on lo after the proxy started: the proxy follows the node's addresses live.
        var vip = new IPEndPoint(IPAddress.Parse("198.18.3.1"), 18082);
        lab.Lab.Proxy.AddAddress("lo", "198.18.3.1/32");
        try
        {
            using var listener = Listen(lab.Lab.Proxy, vip);
            int code = -1;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
            while (code != 2 && DateTime.UtcNow < deadline)
            {
                code = await ConnectCodeAsync(ProxyLabFixture.MainPort, vip);
                while (HasPending(listener))
                {
                    listener.Accept().Dispose();
                }
            }

            Assert.True(code == 2, $"CONNECT to an address of the node (like the VIP): reply {code}, want 2\n{lab.Describe()}");
        }
        finally
        {
            await lab.Lab.Proxy.RunAsync("ip", ["addr", "del", "198.18.3.1/32", "dev", "lo"], TimeSpan.FromSeconds(10)).WithTimeout();
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect_RuleNamingLoopback_Passes()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(Feature);
        const int port = 1090;
        using var loopback = Listen(lab.Lab.Proxy, new IPEndPoint(IPAddress.Loopback, 18083));
        using var proxy = await lab.StartConfigInstanceAsync(port, """
            internal: 198.18.1.1 port = 1090
            client pass { from: 198.18.1.0/24 to: 0/0 }
            socks pass { from: 0/0 to: 127.0.0.1/32 }

            """);

        var code = await ConnectCodeAsync(port, new IPEndPoint(IPAddress.Loopback, 18083));

        Assert.True(code == 0 && HasPending(loopback), $"CONNECT to 127.0.0.1 under a rule naming it: reply {code}\n{proxy.Describe()}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect_NameResolvingToAllowedThenBlocked_NeverDialsTheBlocked()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(Feature);
        const int port = 1091, metrics = 9191, target = 18084;
        // two.lab is [198.18.2.2, 198.18.2.3]: nothing listens on the first, so a proxy that checked only
        // the first address would fall through to the second, which the rules block.
        using var blocked = Listen(lab.Lab.Target, new IPEndPoint(ProxyLab.TargetSecondV4, target));
        using var proxy = await lab.StartConfigInstanceAsync(port, WithMetrics(port, metrics, """
            client pass { from: 198.18.1.0/24 to: 0/0 }
            socks block { from: 0/0 to: 198.18.2.3/32 }
            socks pass { from: 0/0 to: 0/0 }
            """));

        var curl = await lab.CurlAsync("--socks5-hostname", $"198.18.1.1:{port}", $"http://{ProxyLab.TwoAddressName}:{target}/");
        var counters = await ScrapeAsync(metrics);

        Assert.False(curl.Succeeded, $"curl: {curl}\n{proxy.Describe()}");
        Assert.False(HasPending(blocked), $"the blocked address {ProxyLab.TargetSecondV4} was dialled\n{proxy.Describe()}");
        Assert.True(counters.GetValueOrDefault("l2proxy_resolved_addresses_skipped_total") == 1, $"skipped addresses: {counters.GetValueOrDefault("l2proxy_resolved_addresses_skipped_total")}\n{proxy.Describe()}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect_LocalClientExcludedByClientRule_IsRefusedAndTheProbeStaysQuiet()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(Feature);
        const int port = 1092, metrics = 9192;
        using var proxy = await lab.StartConfigInstanceAsync(port, WithMetrics(port, metrics, """
            client pass { from: 198.18.1.2/32 to: 0/0 }
            socks pass { from: 0/0 to: 0/0 }
            """));
        var listen = new IPEndPoint(ProxyLab.ProxyInsideV4, port);

        // From the proxy host to the address it listens on: the source is that address (as l2bal's probe of the VIP).
        byte probeMethod;
        using (var probe = await lab.Lab.Proxy.ConnectTcpAsync(listen, TimeSpan.FromSeconds(5)).WithTimeout())
        {
            await probe.SendAsync(new byte[] { 5, 2, 0, 2 }, SocketFlags.None);
            probeMethod = (await Socks5Client.ReadExactlyAsync(probe, 2).WithTimeout())[1];
        }
        await Task.Delay(200); // the proxy sees the probe's FIN
        var quietAfterProbe = !Regex.IsMatch(proxy.Log, @"info\[(11|20)\]");

        byte code;
        using (var local = await lab.Lab.Proxy.ConnectTcpAsync(listen, TimeSpan.FromSeconds(5)).WithTimeout())
        {
            (code, _) = await Socks5Client.HandshakeAsync(local, Socks5Client.Connect, new IPEndPoint(ProxyLab.TargetV4, TargetServers.HttpPort)).WithTimeout();
        }
        // The refusal is counted after its reply, when the session closes: polled, not read once.
        const string Blocked = "l2proxy_sessions_ended_total{outcome=\"ClientBlocked\"}";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        var counters = await ScrapeAsync(metrics);
        while (counters.GetValueOrDefault(Blocked) < 1 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
            counters = await ScrapeAsync(metrics);
        }

        Assert.True(probeMethod == 0, $"the health probe's greeting got method {probeMethod}\n{proxy.Describe()}");
        Assert.True(quietAfterProbe, $"the health probe was logged at info\n{proxy.Describe()}");
        Assert.True(code == 2, $"local client's CONNECT: reply {code}, want 2\n{proxy.Describe()}");
        Assert.True(counters.GetValueOrDefault(Blocked) == 1, $"ClientBlocked not counted once\n{proxy.Describe()}");
    }

    /// <summary>One UDP association: a datagram to the proxy host's loopback, one to its outer address, then one echoed by the target.</summary>
    private const string UdpIntoTheNode = """
        import socket, sys, socks
        s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
        s.set_proxy(socks.SOCKS5, "198.18.1.1", 1080)
        s.settimeout(3)
        for destination in (("127.0.0.1", 18085), ("198.18.2.1", 18085)):
            s.sendto(b"into the node", destination)
        s.sendto(b"echo me", ("198.18.2.2", int(sys.argv[1])))
        data, peer = s.recvfrom(2048)
        print("echoed" if data == b"echo me" else "wrong")
        """;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task UdpDatagram_ToProxyHostLoopbackOrOwnAddress_IsDroppedAndCounted()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(Feature);
        using var loopback = lab.Lab.Proxy.OpenSocket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        loopback.Bind(new IPEndPoint(IPAddress.Loopback, 18085));
        using var outer = lab.Lab.Proxy.OpenSocket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        outer.Bind(new IPEndPoint(ProxyLab.ProxyOutsideV4, 18085));
        var before = await ScrapeAsync(ProxyLabFixture.MetricsPort);

        var script = Path.Combine(lab.Lab.Network.CreateTempDirectory("udpnode"), "udp.py");
        await File.WriteAllTextAsync(script, UdpIntoTheNode);
        var run = await lab.Lab.Client.RunAsync(LabBinaries.RequirePythonSocks(), [script, $"{TargetServers.UdpEchoPort}"], TimeSpan.FromSeconds(30))
            .WithTimeout(TimeSpan.FromSeconds(40));
        var after = await ScrapeAsync(ProxyLabFixture.MetricsPort);

        const string dropped = "l2proxy_udp_datagrams_dropped_total{reason=\"ProtectedDestination\"}";
        Assert.True(run.Succeeded && run.StdOut.Trim() == "echoed", $"the association did not relay to the target: {run}\n{lab.Describe()}");
        Assert.False(HasPending(loopback) || HasPending(outer), $"a datagram reached the proxy host itself\n{lab.Describe()}");
        Assert.True(after.GetValueOrDefault(dropped) - before.GetValueOrDefault(dropped) >= 2, $"protected datagrams not counted\n{lab.Describe()}");
    }

    /// <summary>A sockd.conf serving on 198.18.1.1:<paramref name="port"/> with metrics on loopback, then <paramref name="rules"/>.</summary>
    private static string WithMetrics(int port, int metrics, string rules) =>
        $"internal: 198.18.1.1 port = {port}\nexternal: 198.18.2.1\nmetrics: 127.0.0.1 port = {metrics}\n{rules}\n";

    private static Socket Listen(LabHost host, IPEndPoint at)
    {
        var socket = host.OpenSocket(at.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(at);
        socket.Listen(8);
        return socket;
    }

    /// <summary>Whether a connection is waiting in the listener's queue (the proxy dialled it).</summary>
    private static bool HasPending(Socket listener) => listener.Poll(TimeSpan.FromMilliseconds(200), SelectMode.SelectRead);

    private async Task<byte> ConnectCodeAsync(int port, IPEndPoint destination)
    {
        using var socket = await lab.Lab.Client.ConnectTcpAsync(new IPEndPoint(ProxyLab.ProxyInsideV4, port), TimeSpan.FromSeconds(5)).WithTimeout();
        return (await Socks5Client.HandshakeAsync(socket, Socks5Client.Connect, destination).WithTimeout()).Code;
    }

    private static double Refused(Dictionary<string, double> counters, string kind) =>
        counters.GetValueOrDefault($"l2proxy_protected_destinations_refused_total{{class=\"{kind}\"}}");

    /// <summary>Every sample of an l2proxy metrics endpoint in the proxy namespace, by name and labels.</summary>
    private async Task<Dictionary<string, double>> ScrapeAsync(int port)
    {
        var scrape = await lab.Lab.Proxy.RunAsync(lab.Curl, ["-sS", "--max-time", "5", $"http://127.0.0.1:{port}/metrics"], TimeSpan.FromSeconds(10)).WithTimeout();
        Assert.True(scrape.Succeeded, $"scrape of :{port}: {scrape}\n{lab.Describe()}");
        var samples = new Dictionary<string, double>();
        foreach (var line in scrape.StdOut.Split('\n'))
        {
            var space = line.LastIndexOf(' ');
            if (line.StartsWith("l2proxy_", StringComparison.Ordinal) && space > 0)
            {
                samples[line[..space]] = double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
            }
        }
        return samples;
    }
}
