using System.Net;
using System.Net.Sockets;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// A --port-range outside the proxy node's ip_local_port_range: the kernel's per-socket range does
/// not apply there, so outgoing TCP binds an explicit port (docs/design.md#single-ip-mode). The
/// outgoing address is also a listening address, so it is shared and its ports come from the range.
/// </summary>
[Collection(ProxyLabGroup.Name)]
public sealed class PortRangeFallbackTests(ProxyLabFixture lab)
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(10);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect_FourHundredSessionsToOneTarget_AllServedOnDistinctPorts()
    {
        ProxyUnderTest.SkipUnlessL2Proxy("--port-range");
        // Issue 18: with SO_REUSEADDR two sockets took one port and the second connect failed
        // (EADDRNOTAVAIL, reported as exhausted) after ~120-150 sessions to one target.
        const int port = 1097, metrics = 9197, sessions = 400;
        var range = (Low: 62000, High: 62999);
        await AssertOutsideLocalRangeAsync(range.Low);
        using var proxy = await StartAsync(port, metrics, $"{range.Low}-{range.High}");
        var echo = new IPEndPoint(ProxyLab.TargetV4, TargetServers.TcpEchoPort);
        var held = new List<(Socket Socket, byte Code, IPEndPoint Bound)>();
        try
        {
            for (var i = 0; i < sessions; i++)
            {
                held.Add(await RequestAsync(port, echo));
                if (held[^1].Code != 0)
                {
                    break;
                }
            }
            var why = $"{held.Count} sessions, last reply {held[^1].Code}\n{await ScrapeAsync(metrics)}\n{proxy.Describe()}";
            Assert.True(held.Count == sessions && held.All(h => h.Code == 0), why);
            Assert.All(held, h => Assert.True(h.Bound.Port >= range.Low && h.Bound.Port <= range.High, $"{h.Bound} outside the range"));
            Assert.Equal(sessions, held.Select(h => h.Bound.Port).Distinct().Count());

            // Every 4-tuple carries bytes: the target echoes one on each.
            var one = new byte[1];
            foreach (var h in held)
            {
                await h.Socket.SendAsync(new byte[] { 0x42 }, SocketFlags.None).WithTimeout(Step);
                await Socks5Client.ReadExactlyAsync(h.Socket, one).WithTimeout(Step);
            }
            var scrape = await ScrapeAsync(metrics);
            Assert.Matches(@$"(?m)^l2proxy_port_range_in_use\{{range=""{range.Low}-{range.High}""\}} {sessions}$", scrape);
            Assert.DoesNotMatch(@"(?m)^l2proxy_port_range_exhausted_total\{reason=""connect""\} [1-9]", scrape);
        }
        finally
        {
            held.ForEach(h => h.Socket.Dispose());
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect_TinyRangeOutsideLocalRange_ThirdSessionRefusedAndCounted()
    {
        ProxyUnderTest.SkipUnlessL2Proxy("--port-range");
        const int port = 1098, metrics = 9198;
        var range = (Low: 63500, High: 63501);
        await AssertOutsideLocalRangeAsync(range.Low);
        using var proxy = await StartAsync(port, metrics, $"{range.Low}-{range.High}");
        var echo = new IPEndPoint(ProxyLab.TargetV4, TargetServers.TcpEchoPort);
        var held = new List<(Socket Socket, byte Code, IPEndPoint Bound)>();
        try
        {
            held.Add(await RequestAsync(port, echo));
            held.Add(await RequestAsync(port, echo));
            // One port per socket in the fallback: another target endpoint finds none free either.
            held.Add(await RequestAsync(port, new IPEndPoint(ProxyLab.TargetV4, TargetServers.HttpPort)));
            var scrape = await ScrapeAsync(metrics);
            var why = $"{string.Join(", ", held.Select(h => $"{h.Code} {h.Bound}"))}\n{scrape}\n{proxy.Describe()}";

            Assert.True(held[0].Code == 0 && held[1].Code == 0 && held[0].Bound.Port != held[1].Bound.Port, why);
            Assert.True(held[2].Code == 1, why);
            Assert.Matches(@"(?m)^l2proxy_port_range_exhausted_total\{reason=""connect""\} 1$", scrape);
            Assert.Matches(@$"(?m)^l2proxy_port_range_in_use\{{range=""{range.Low}-{range.High}""\}} 2$", scrape);
        }
        finally
        {
            held.ForEach(h => h.Socket.Dispose());
        }
    }

    /// <summary>The test means the fallback only if the range lies above the proxy namespace's ip_local_port_range.</summary>
    private async Task AssertOutsideLocalRangeAsync(int low)
    {
        var local = await lab.Lab.Proxy.RunAsync("cat", ["/proc/sys/net/ipv4/ip_local_port_range"], Step).WithTimeout();
        Assert.True(local.Succeeded, local.ToString());
        var high = int.Parse(local.StdOut.Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(low > high, $"ip_local_port_range {local.StdOut.Trim()} covers {low}");
    }

    private async Task<LabProcess> StartAsync(int port, int metrics, string range)
    {
        // Listening on the outside address too makes it shared: outgoing sockets on it take ports of the range.
        var process = lab.Lab.Proxy.Start(LabBinaries.L2Proxy,
            ["--listen", $"198.18.1.1:{port}", "--listen", $"198.18.2.1:{port}", "--external", "198.18.2.1",
             "--allow", "198.18.1.0/24", "--port-range", range, "--metrics", $"127.0.0.1:{metrics}"]);
        await lab.Lab.Client.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, port, Step, lab.Describe, process).WithTimeout(Step * 2);
        return process;
    }

    private async Task<(Socket Socket, byte Code, IPEndPoint Bound)> RequestAsync(int port, IPEndPoint destination)
    {
        var socket = await lab.Lab.Client.ConnectTcpAsync(new IPEndPoint(ProxyLab.ProxyInsideV4, port), Step).WithTimeout();
        try
        {
            var (code, bound) = await Socks5Client.HandshakeAsync(socket, Socks5Client.Connect, destination).WithTimeout(Step);
            return (socket, code, bound);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async Task<string> ScrapeAsync(int metrics)
    {
        var result = await lab.Lab.Proxy.RunAsync(lab.Curl, ["-sS", "--max-time", "5", $"http://127.0.0.1:{metrics}/metrics"], Step).WithTimeout();
        Assert.True(result.Succeeded, $"scrape failed: {result}");
        // The port-range series only: the rest of the scrape would drown the failure message.
        return string.Join('\n', result.StdOut.Split('\n').Where(l => l.StartsWith("l2proxy_port_range_", StringComparison.Ordinal)));
    }
}
