using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>The main l2proxy's <c>--metrics</c> endpoint, scraped with curl inside the proxy namespace.</summary>
[Collection(ProxyLabGroup.Name)]
public sealed partial class MetricsTests(ProxyLabFixture lab)
{
    [GeneratedRegex(@"^(?<key>l2proxy_[a-z_]+(\{[^}]*\})?) (?<value>\S+)$", RegexOptions.Multiline)]
    private static partial Regex Sample();

    private const string Metrics = "a Prometheus endpoint (--metrics)";

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Scrape_AfterTraffic_CountersMoved()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(Metrics);

        var before = await ScrapeAsync();
        var fetch = await lab.CurlAsync("--socks5", "198.18.1.1:1080", $"http://198.18.2.2:{TargetServers.HttpPort}/{TargetServers.KnownFileName}");
        Assert.True(fetch.Succeeded, $"{fetch}\n{lab.Describe()}");

        // Poll until the relay has counted the whole file and the session's end (the scrape can race its last chunk, and the
        // session ends only once curl's FIN reached l2proxy, after curl saw the whole file).
        const string Completed = "l2proxy_sessions_ended_total{outcome=\"Completed\"}";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        Dictionary<string, double> after;
        do
        {
            after = await ScrapeAsync();
        }
        while ((after["l2proxy_client_sent_bytes_total"] - before["l2proxy_client_sent_bytes_total"] < lab.Servers.KnownFileContent.Length
                || after.GetValueOrDefault(Completed) <= before.GetValueOrDefault(Completed))
            && DateTime.UtcNow < deadline && await Delay());

        Assert.True(after["l2proxy_sessions_total"] > before["l2proxy_sessions_total"], lab.Describe());
        Assert.True(after["l2proxy_requests_total{command=\"connect\"}"] > before["l2proxy_requests_total{command=\"connect\"}"], lab.Describe());
        Assert.True(after["l2proxy_handshake_seconds_count"] > before["l2proxy_handshake_seconds_count"], lab.Describe());
        Assert.True(after.GetValueOrDefault(Completed) > before.GetValueOrDefault(Completed), lab.Describe());
        Assert.True(after["l2proxy_client_sent_bytes_total"] - before["l2proxy_client_sent_bytes_total"] >= lab.Servers.KnownFileContent.Length,
            $"bytes to clients moved by {after["l2proxy_client_sent_bytes_total"] - before["l2proxy_client_sent_bytes_total"]}\n{lab.Describe()}");
        Assert.True(after["l2proxy_client_received_bytes_total"] > before["l2proxy_client_received_bytes_total"], lab.Describe());
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Scrape_DuringARunningSession_CountsItsBytesAlready()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(Metrics);

        var before = await ScrapeAsync();
        using var socket = await lab.Lab.Client.ConnectTcpAsync(new IPEndPoint(ProxyLab.ProxyInsideV4, ProxyLabFixture.MainPort), TimeSpan.FromSeconds(5)).WithTimeout();
        var (code, _) = await Socks5Client.HandshakeAsync(socket, Socks5Client.Connect, new IPEndPoint(ProxyLab.TargetV4, TargetServers.TcpEchoPort)).WithTimeout();
        Assert.True(code == 0, $"CONNECT reply {code}\n{lab.Describe()}");
        // Large enough that the relay leaves its first small copies and splices (or copies) in chunks.
        var payload = new byte[256 * 1024];
        Random.Shared.NextBytes(payload);
        await socket.SendAsync(payload).WithTimeout();
        Assert.Equal(payload, await Socks5Client.ReadExactlyAsync(socket, payload.Length).WithTimeout());

        // The session stays open: the counters must have moved already (poll: the scrape races the relay's last chunk).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        Dictionary<string, double> during;
        do
        {
            during = await ScrapeAsync();
        }
        while ((during["l2proxy_client_received_bytes_total"] - before["l2proxy_client_received_bytes_total"] < payload.Length
                || during["l2proxy_client_sent_bytes_total"] - before["l2proxy_client_sent_bytes_total"] < payload.Length)
            && DateTime.UtcNow < deadline && await Delay());

        Assert.True(during["l2proxy_client_received_bytes_total"] - before["l2proxy_client_received_bytes_total"] >= payload.Length,
            $"bytes from clients moved by {during["l2proxy_client_received_bytes_total"] - before["l2proxy_client_received_bytes_total"]} during the session\n{lab.Describe()}");
        Assert.True(during["l2proxy_client_sent_bytes_total"] - before["l2proxy_client_sent_bytes_total"] >= payload.Length,
            $"bytes to clients moved by {during["l2proxy_client_sent_bytes_total"] - before["l2proxy_client_sent_bytes_total"]} during the session\n{lab.Describe()}");
    }

    private static async Task<bool> Delay()
    {
        await Task.Delay(100);
        return true;
    }

    private async Task<Dictionary<string, double>> ScrapeAsync()
    {
        var result = await lab.Lab.Proxy.RunAsync(lab.Curl, ["-sS", "--max-time", "5", $"http://127.0.0.1:{ProxyLabFixture.MetricsPort}/metrics"], TimeSpan.FromSeconds(10))
            .WithTimeout();
        Assert.True(result.Succeeded, $"scrape failed: {result}\n{lab.Describe()}");
        Assert.Contains("# TYPE l2proxy_sessions_total counter", result.StdOut, StringComparison.Ordinal);
        return Sample().Matches(result.StdOut).ToDictionary(m => m.Groups["key"].Value, m => double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture));
    }
}
