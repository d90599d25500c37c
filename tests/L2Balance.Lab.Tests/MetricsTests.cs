using System.Globalization;
using System.Text.RegularExpressions;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests;

/// <summary>The main l2proxy's <c>--metrics</c> endpoint, scraped with curl inside the proxy namespace.</summary>
[Collection(ProxyLabGroup.Name)]
public sealed partial class MetricsTests(ProxyLabFixture lab)
{
    [GeneratedRegex(@"^(?<key>l2proxy_[a-z_]+(\{[^}]*\})?) (?<value>\S+)$", RegexOptions.Multiline)]
    private static partial Regex Sample();

    [Fact]
    public async Task Scrape_AfterTraffic_CountersMoved()
    {
        if (ProxyUnderTest.Kind != ProxyKind.L2Proxy)
        {
            return; // Dante and microsocks have no Prometheus endpoint.
        }

        var before = await ScrapeAsync();
        var fetch = await lab.CurlAsync("--socks5", "198.18.1.1:1080", $"http://198.18.2.2:{TargetServers.HttpPort}/{TargetServers.KnownFileName}");
        Assert.True(fetch.Succeeded, $"{fetch}\n{lab.Describe()}");

        // The session's bytes are counted when it ends: poll until curl's session is closed on the proxy too.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        Dictionary<string, double> after;
        do
        {
            after = await ScrapeAsync();
        }
        while (after["l2proxy_client_sent_bytes_total"] - before["l2proxy_client_sent_bytes_total"] < lab.Servers.KnownFileContent.Length
            && DateTime.UtcNow < deadline && await Delay());

        Assert.True(after["l2proxy_sessions_total"] > before["l2proxy_sessions_total"], lab.Describe());
        Assert.True(after["l2proxy_requests_total{command=\"connect\"}"] > before["l2proxy_requests_total{command=\"connect\"}"], lab.Describe());
        Assert.True(after["l2proxy_handshake_seconds_count"] > before["l2proxy_handshake_seconds_count"], lab.Describe());
        Assert.True(after["l2proxy_sessions_ended_total{outcome=\"Completed\"}"] > before["l2proxy_sessions_ended_total{outcome=\"Completed\"}"], lab.Describe());
        Assert.True(after["l2proxy_client_sent_bytes_total"] - before["l2proxy_client_sent_bytes_total"] >= lab.Servers.KnownFileContent.Length,
            $"bytes to clients moved by {after["l2proxy_client_sent_bytes_total"] - before["l2proxy_client_sent_bytes_total"]}\n{lab.Describe()}");
        Assert.True(after["l2proxy_client_received_bytes_total"] > before["l2proxy_client_received_bytes_total"], lab.Describe());
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
