using System.Text;
using L2Balance.Common.Metrics;
using L2Balance.Fuzz.Engine;

namespace L2Balance.Fuzz.Targets;

/// <summary>
/// The request head of the metrics endpoint both daemons serve (common/Metrics/MetricsEndpoint.cs):
/// the bytes a client sent, up to the endpoint's 8 KiB, framed by <c>HeadLength</c> and classified
/// by <c>Classify</c> as the endpoint does once the head is complete.
/// </summary>
internal sealed class MetricsRequestTarget : FuzzTarget<byte[], MetricsEndpoint.Route?>
{
    /// <summary>The endpoint's request-head limit (MetricsEndpointLimits.Default).</summary>
    private const int MaxRequestBytes = 8 * 1024;

    public override string Name => "metrics-request";

    public override string Product => "common";

    public override string EntryPoint => "MetricsEndpoint.HeadLength + Classify";

    public override int MaxInputLength => MaxRequestBytes + 512;

    public override long AllocationBound(int length) => 1024;

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        .. new[]
        {
            "GET /metrics HTTP/1.1\r\nHost: 198.18.0.1:9180\r\nUser-Agent: Prometheus/2.45.0\r\nAccept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\nAccept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n",
            "HEAD /metrics?x=1 HTTP/1.0\n\n",
            "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "GET / HTTP/1.1\r\n\r\n",
            "GET /metrics HTTP/2\r\n\r\n",
        }.Select(Encoding.ASCII.GetBytes),
    ];

    public override IReadOnlyList<byte[]> Tokens { get; } =
        [.. new[] { "\r\n", "\n", "\r\n\r\n", " ", ":", "GET", "HEAD", "/metrics", "HTTP/1.1", "HTTP/1.0", "?", "\t", "\u007f", "Host: x" }.Select(Encoding.ASCII.GetBytes)];

    /// <summary>What the endpoint's buffer holds: the first 8 KiB a client sent.</summary>
    protected override byte[] Convert(byte[] input, ref FuzzRandom random) => input.Length > MaxRequestBytes ? input[..MaxRequestBytes] : input;

    /// <summary>Null while the head is incomplete (the endpoint reads on, or answers 431 when full).</summary>
    protected override MetricsEndpoint.Route? Parse(byte[] input) =>
        MetricsEndpoint.HeadLength(input) < 0 ? null : MetricsEndpoint.Classify(input);

    protected override bool IsAccepted(MetricsEndpoint.Route? result) => result is MetricsEndpoint.Route.Get or MetricsEndpoint.Route.Head;

    protected override void Check(byte[] input, MetricsEndpoint.Route? result) =>
        Require(result is not (MetricsEndpoint.Route.Get or MetricsEndpoint.Route.Head) || input.AsSpan().StartsWith("GET /metrics"u8) || input.AsSpan().StartsWith("HEAD /metrics"u8),
            $"{result} for a request line that does not ask for /metrics");
}
