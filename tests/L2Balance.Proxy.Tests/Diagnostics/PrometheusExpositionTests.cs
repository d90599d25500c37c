using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using L2Balance.Common.Metrics;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Protocol;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Proxy.Tests.Diagnostics;

public partial class PrometheusExpositionTests
{
    [GeneratedRegex(@"^(?<name>l2proxy_[a-z_]+)(\{(?<label>[a-z]+)=""(?<value>[^""]*)""\})? (?<number>[-+0-9.eE]+|\+Inf)$")]
    private static partial Regex SampleLine();

    private static string Expose(ProxyCounters counters)
    {
        var text = new StringBuilder();
        counters.WritePrometheus(text);
        return text.ToString();
    }

    private static Dictionary<string, double> Samples(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => !l.StartsWith('#'))
            .Select(l => SampleLine().Match(l))
            .ToDictionary(
                m => m.Groups["label"].Success ? $"{m.Groups["name"].Value}{{{m.Groups["label"].Value}=\"{m.Groups["value"].Value}\"}}" : m.Groups["name"].Value,
                m => double.Parse(m.Groups["number"].Value, CultureInfo.InvariantCulture));

    [Fact]
    public void EveryLine_IsHelpTypeOrAWellFormedSample_AndEveryMetricHasHelpAndTypeBeforeItsSamples()
    {
        var text = Expose(new ProxyCounters());
        var declared = new HashSet<string>();
        var helped = new HashSet<string>();
        Assert.EndsWith("\n", text, StringComparison.Ordinal);
        foreach (var line in text.TrimEnd('\n').Split('\n'))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ', 4);
                Assert.True(parts.Length == 4 && parts[3].Length > 0, line);
                Assert.True(helped.Add(parts[2]), $"HELP twice: {line}");
            }
            else if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                Assert.Contains(parts[3], new[] { "counter", "gauge", "histogram" });
                Assert.Contains(parts[2], helped);
                Assert.True(declared.Add(parts[2]), $"TYPE twice: {line}");
                if (parts[3] == "counter")
                {
                    Assert.EndsWith("_total", parts[2], StringComparison.Ordinal);
                }
            }
            else
            {
                var match = SampleLine().Match(line);
                Assert.True(match.Success, $"malformed sample line: '{line}'");
                var name = match.Groups["name"].Value;
                var family = Regex.Replace(name, "_(bucket|sum|count)$", string.Empty);
                Assert.True(declared.Contains(name) || declared.Contains(family), $"sample before its TYPE: {line}");
            }
        }
    }

    [Fact]
    public void EveryOutcomeAndDropReason_IsExported_EvenAtZero()
    {
        var samples = Samples(Expose(new ProxyCounters()));

        foreach (var outcome in Enum.GetValues<SessionOutcome>())
        {
            Assert.Equal(0, samples[$"l2proxy_sessions_ended_total{{outcome=\"{outcome}\"}}"]);
        }

        foreach (var reason in Enum.GetValues<UdpDropReason>())
        {
            Assert.Equal(0, samples[$"l2proxy_udp_datagrams_dropped_total{{reason=\"{reason}\"}}"]);
        }
    }

    [Fact]
    public void Counters_AfterSessionsCommandsAndBytes_AppearWithTheirValues()
    {
        var counters = new ProxyCounters();
        counters.SessionStarted();
        counters.SessionStarted();
        counters.SessionEnded(SessionOutcome.AuthFailed);
        counters.SessionStarted();
        counters.SessionEnded(SessionOutcome.NegotiateTimeout);
        counters.CommandRequested(SocksCommand.Connect);
        counters.CommandRequested(SocksCommand.UdpAssociate);
        counters.AddBytesFromClients(1000);
        counters.AddBytesToClients(2000);
        counters.UdpRelayed(fromClient: 30, toClient: 0);
        counters.UdpRelayed(fromClient: 0, toClient: 70);
        counters.UdpDrop(UdpDropReason.Blocked);

        var samples = Samples(Expose(counters));

        Assert.Equal(1, samples["l2proxy_sessions_active"]);
        Assert.Equal(3, samples["l2proxy_sessions_total"]);
        Assert.Equal(1, samples["l2proxy_requests_total{command=\"connect\"}"]);
        Assert.Equal(1, samples["l2proxy_requests_total{command=\"udp_associate\"}"]);
        Assert.Equal(0, samples["l2proxy_requests_total{command=\"bind\"}"]);
        Assert.Equal(1, samples["l2proxy_auth_failures_total"]);
        Assert.Equal(1, samples["l2proxy_negotiate_timeouts_total"]);
        Assert.Equal(1, samples["l2proxy_rule_blocks_total{rule=\"udp\"}"]);
        Assert.Equal(1030, samples["l2proxy_client_received_bytes_total"]);
        Assert.Equal(2070, samples["l2proxy_client_sent_bytes_total"]);
        Assert.Equal(2, samples["l2proxy_udp_datagrams_relayed_total"]);
    }

    [Fact]
    public void WorkLimitCounters_AfterRefusalsLoopErrorsAndFallbacks_AppearWithTheirLabels()
    {
        var counters = new ProxyCounters();
        counters.PasswordCheckRefused(WorkLimit.PerClient);
        counters.PasswordCheckRefused(WorkLimit.PerClient);
        counters.PasswordCheckRefused(WorkLimit.Total);
        counters.UdpLookupRefused(WorkLimit.PerClient);
        counters.LoopError(ProxyLoop.Accept);
        counters.LoopError(ProxyLoop.Metrics);
        counters.LoopError(ProxyLoop.Metrics);
        counters.SpliceFellBack();

        var samples = Samples(Expose(counters));

        Assert.Equal(2, samples["l2proxy_password_checks_refused_total{limit=\"per_address\"}"]);
        Assert.Equal(1, samples["l2proxy_password_checks_refused_total{limit=\"total\"}"]);
        Assert.Equal(1, samples["l2proxy_udp_lookups_refused_total{limit=\"per_association\"}"]);
        Assert.Equal(0, samples["l2proxy_udp_lookups_refused_total{limit=\"total\"}"]);
        Assert.Equal(1, samples["l2proxy_loop_errors_total{loop=\"accept\"}"]);
        Assert.Equal(2, samples["l2proxy_loop_errors_total{loop=\"metrics\"}"]);
        Assert.True(samples.ContainsKey("l2proxy_loop_errors_total{loop=\"udp_poller\"}"));
        Assert.Equal(1, samples["l2proxy_splice_fallbacks_total"]);
    }

    [Fact]
    public void HandshakeHistogram_ThreeHandshakes_IsCumulativeWithInfEqualToCountAndSumInSeconds()
    {
        var counters = new ProxyCounters();
        counters.HandshakeCompleted(TimeSpan.FromMicroseconds(50));
        counters.HandshakeCompleted(TimeSpan.FromMilliseconds(3));
        counters.HandshakeCompleted(TimeSpan.FromSeconds(60));

        var samples = Samples(Expose(counters));

        Assert.Equal(1, samples["l2proxy_handshake_seconds_bucket{le=\"0.0001\"}"]);
        Assert.Equal(1, samples["l2proxy_handshake_seconds_bucket{le=\"0.0025\"}"]);
        Assert.Equal(2, samples["l2proxy_handshake_seconds_bucket{le=\"0.005\"}"]);
        Assert.Equal(2, samples["l2proxy_handshake_seconds_bucket{le=\"10\"}"]);
        Assert.Equal(3, samples["l2proxy_handshake_seconds_bucket{le=\"+Inf\"}"]);
        Assert.Equal(3, samples["l2proxy_handshake_seconds_count"]);
        Assert.Equal(60.00305, samples["l2proxy_handshake_seconds_sum"], 6);
        var buckets = samples.Where(s => s.Key.StartsWith("l2proxy_handshake_seconds_bucket", StringComparison.Ordinal)).Select(s => s.Value).ToList();
        Assert.Equal(buckets.Order(), buckets);
    }

    [Fact]
    public async Task Endpoint_GetMetrics_ServesTheCountersOverHttp()
    {
        var counters = new ProxyCounters();
        counters.SessionStarted();
        await using var endpoint = ProxyMetrics.Open(new IPEndPoint(IPAddress.Loopback, 0), counters, new ProxyLog(new LogWriter([], []), 0));
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(endpoint.LocalEndPoint).WithTimeout();

        await client.SendAsync("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray()).WithTimeout();
        var answer = new StringBuilder();
        var buffer = new byte[65536];
        int n;
        while ((n = await client.ReceiveAsync(buffer).WithTimeout()) > 0)
        {
            answer.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }

        var text = answer.ToString();
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", text, StringComparison.Ordinal);
        Assert.Contains($"\r\nContent-Type: {PrometheusWriter.ContentType}\r\n", text, StringComparison.Ordinal);
        Assert.EndsWith("\r\n\r\n" + Expose(counters), text, StringComparison.Ordinal);
    }
}
