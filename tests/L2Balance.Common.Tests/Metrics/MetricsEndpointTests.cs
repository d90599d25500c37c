using System.Net;
using System.Net.Sockets;
using System.Text;
using L2Balance.Common.Metrics;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Common.Tests.Metrics;

/// <summary>The endpoint on a real socket on 127.0.0.1 (port 0), scraped by hand-written requests.</summary>
public sealed class MetricsEndpointTests
{
    private const string Exposition = "# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n";

    private static readonly MetricsEndpointLimits Short =
        new(MaxRequestBytes: 256, ReadTimeout: TimeSpan.FromMilliseconds(300), RenderTimeout: TimeSpan.FromMilliseconds(300), SendTimeout: TimeSpan.FromSeconds(2), MaxClients: 2);

    [Theory]
    [InlineData("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", true)]
    [InlineData("GET /metrics?name=x HTTP/1.0\n\n", true)]
    [InlineData("HEAD /metrics HTTP/1.1\r\n\r\n", false)]
    public async Task Request_GetOrHeadOfMetrics_AnswersPrometheusTextWithItsLength(string request, bool withBody)
    {
        await using var endpoint = Open(() => Task.FromResult(Exposition));

        var answer = await RequestAsync(endpoint, request);

        Assert.StartsWith("HTTP/1.1 200 OK\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n", answer, StringComparison.Ordinal);
        Assert.Contains($"\r\nContent-Length: {Exposition.Length}\r\n", answer, StringComparison.Ordinal);
        Assert.EndsWith("\r\n\r\n" + (withBody ? Exposition : ""), answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Post_Metrics_IsMethodNotAllowedAndNamesTheAllowedOnes()
    {
        await using var endpoint = Open(() => Task.FromResult(Exposition));

        var answer = await RequestAsync(endpoint, "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");

        Assert.StartsWith("HTTP/1.1 405 Method Not Allowed\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("\r\nAllow: GET, HEAD\r\n", answer, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\n\r\n", "404 Not Found")]
    [InlineData("GET /metricsx HTTP/1.1\r\n\r\n", "404 Not Found")]
    [InlineData("GET /other/metrics HTTP/1.1\r\n\r\n", "404 Not Found")]
    [InlineData("garbage\r\n\r\n", "400 Bad Request")]
    [InlineData("GET /metrics\r\n\r\n", "400 Bad Request")]
    [InlineData("GET /metrics HTTP/2.0\r\n\r\n", "400 Bad Request")]
    [InlineData("GET  /metrics HTTP/1.1\r\n\r\n", "400 Bad Request")]
    [InlineData("GET metrics HTTP/1.1\r\n\r\n", "400 Bad Request")]
    [InlineData("G(T /metrics HTTP/1.1\r\n\r\n", "400 Bad Request")]
    [InlineData("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", "400 Bad Request")]
    [InlineData("GET /metrics HTTP/1.1\r\n folded: header\r\n\r\n", "400 Bad Request")]
    [InlineData("GET /metrics HTTP/1.1\r\nHost: a\u0001b\r\n\r\n", "400 Bad Request")]
    [InlineData("\u0016\u0003\u0001\u0002\u0000\u0001\u0000\n\n", "400 Bad Request")]
    public async Task Request_OtherPathOrMalformed_IsRefusedWithItsStatus(string request, string status)
    {
        await using var endpoint = Open(() => Task.FromResult(Exposition));

        Assert.StartsWith($"HTTP/1.1 {status}\r\n", await RequestAsync(endpoint, request), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Request_HeadOverTheLimit_IsRefusedWith431()
    {
        await using var endpoint = Open(() => Task.FromResult(Exposition), Short);

        var answer = await RequestAsync(endpoint, "GET /metrics HTTP/1.1\r\nX-Padding: " + new string('a', 300) + "\r\n\r\n");

        Assert.StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n", answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Request_ClosedInsideTheHead_IsBadRequest()
    {
        await using var endpoint = Open(() => Task.FromResult(Exposition));
        using var client = await ConnectAsync(endpoint);

        await client.SendAsync(Encoding.ASCII.GetBytes("GET /metr"));
        client.Shutdown(SocketShutdown.Send);

        Assert.StartsWith("HTTP/1.1 400 Bad Request\r\n", await ReadToEndAsync(client), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SlowClient_GetsRequestTimeout_AndOthersAreServedMeanwhile()
    {
        await using var endpoint = Open(() => Task.FromResult(Exposition), Short);
        using var slow = await ConnectAsync(endpoint);
        await slow.SendAsync(Encoding.ASCII.GetBytes("GET /metrics HTTP/1.1\r\n"));

        Assert.StartsWith("HTTP/1.1 200 OK\r\n", await RequestAsync(endpoint, "GET /metrics HTTP/1.1\r\n\r\n"), StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 408 Request Timeout\r\n", await ReadToEndAsync(slow), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Clients_BeyondTheLimit_AreClosedAtOnceAndScrapesResumeWhenTheSlowOnesTimeOut()
    {
        await using var endpoint = Open(() => Task.FromResult(Exposition), Short);
        using var slow1 = await ConnectAsync(endpoint);
        using var slow2 = await ConnectAsync(endpoint);
        await slow1.SendAsync(Encoding.ASCII.GetBytes("G"));
        await slow2.SendAsync(Encoding.ASCII.GetBytes("G"));
        await Task.Delay(100);

        Assert.Equal("", await RequestAsync(endpoint, "GET /metrics HTTP/1.1\r\n\r\n"));

        Assert.StartsWith("HTTP/1.1 408", await ReadToEndAsync(slow1), StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 408", await ReadToEndAsync(slow2), StringComparison.Ordinal);
        slow1.Dispose();
        slow2.Dispose();
        // The endpoint sees the closes asynchronously: poll until a slot is free again.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        string answer;
        while ((answer = await RequestAsync(endpoint, "GET /metrics HTTP/1.1\r\n\r\n")).Length == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.StartsWith("HTTP/1.1 200 OK\r\n", answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Render_Throws_Answers500WithTheMessageReportsItAndKeepsServing()
    {
        var reported = new List<Exception>();
        var fail = true;
        await using var endpoint = new MetricsEndpoint(
            new IPEndPoint(IPAddress.Loopback, 0),
            () => fail ? throw new InvalidOperationException("the loop is gone") : Task.FromResult(Exposition),
            renderFailed: e => { lock (reported) { reported.Add(e); } });

        var answer = await RequestAsync(endpoint, "GET /metrics HTTP/1.1\r\n\r\n");
        fail = false;

        Assert.StartsWith("HTTP/1.1 500 Internal Server Error\r\n", answer, StringComparison.Ordinal);
        Assert.EndsWith("rendering the metrics failed: the loop is gone\n", answer, StringComparison.Ordinal);
        Assert.Equal("the loop is gone", Assert.Single(reported).Message);
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", await RequestAsync(endpoint, "GET /metrics HTTP/1.1\r\n\r\n"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Render_FaultedTask_Answers500()
    {
        await using var endpoint = Open(() => Task.FromException<string>(new IOException("no kernel counters")));

        var answer = await RequestAsync(endpoint, "GET /metrics HTTP/1.1\r\n\r\n");

        Assert.StartsWith("HTTP/1.1 500 Internal Server Error\r\n", answer, StringComparison.Ordinal);
        Assert.EndsWith("no kernel counters\n", answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Render_NeverFinishing_Answers503AfterTheRenderTimeout()
    {
        var never = new TaskCompletionSource<string>();
        // A read timeout far above the render timeout: on a loaded machine the request may take 300 ms to arrive (it answered 408).
        await using var endpoint = Open(() => never.Task, Short with { ReadTimeout = TimeSpan.FromSeconds(5) });

        Assert.StartsWith("HTTP/1.1 503 Service Unavailable\r\n", await RequestAsync(endpoint, "GET /metrics HTTP/1.1\r\n\r\n"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Constructor_AddressInUse_ThrowsNamingTheAddress()
    {
        await using var first = Open(() => Task.FromResult(Exposition));

        var e = Assert.Throws<InvalidOperationException>(() => new MetricsEndpoint(first.LocalEndPoint, () => Task.FromResult(Exposition)));

        Assert.Contains($"cannot listen for metrics on {first.LocalEndPoint}: AddressAlreadyInUse", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dispose_ListeningEndpoint_ClosesTheListener()
    {
        var endpoint = Open(() => Task.FromResult(Exposition));
        var address = endpoint.LocalEndPoint;

        await endpoint.DisposeAsync();

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var e = await Assert.ThrowsAsync<SocketException>(() => client.ConnectAsync(address).WithTimeout());
        Assert.Equal(SocketError.ConnectionRefused, e.SocketErrorCode);
    }

    [Theory]
    [InlineData("GET /metrics HTTP/1.1\r\n\r\n", "Get")]
    [InlineData("HEAD /metrics HTTP/1.0\r\nHost: a\r\n\r\n", "Head")]
    [InlineData("DELETE /metrics HTTP/1.1\r\n\r\n", "MethodNotAllowed")]
    [InlineData("POST /other HTTP/1.1\r\n\r\n", "MethodNotAllowed")]
    [InlineData("GET /Metrics HTTP/1.1\r\n\r\n", "NotFound")]
    [InlineData("GET * HTTP/1.1\r\n\r\n", "BadRequest")]
    [InlineData("GET http://host/metrics HTTP/1.1\r\n\r\n", "BadRequest")]
    [InlineData("", "BadRequest")]
    public void Classify_RequestHead_IsRoutedByMethodThenPath(string head, string route)
    {
        Assert.Equal(Enum.Parse<MetricsEndpoint.Route>(route), MetricsEndpoint.Classify(Encoding.Latin1.GetBytes(head)));
    }

    private static MetricsEndpoint Open(Func<Task<string>> render, MetricsEndpointLimits? limits = null) =>
        new(new IPEndPoint(IPAddress.Loopback, 0), render, null, null, limits ?? MetricsEndpointLimits.Default);

    private static async Task<Socket> ConnectAsync(MetricsEndpoint endpoint)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(endpoint.LocalEndPoint).WithTimeout();
        return client;
    }

    private static async Task<string> RequestAsync(MetricsEndpoint endpoint, string request)
    {
        using var client = await ConnectAsync(endpoint);
        await client.SendAsync(Encoding.Latin1.GetBytes(request)).WithTimeout();
        return await ReadToEndAsync(client);
    }

    /// <summary>Everything the endpoint sends until it closes; a reset ends it like a close.</summary>
    private static async Task<string> ReadToEndAsync(Socket client)
    {
        var answer = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int n;
            while ((n = await client.ReceiveAsync(buffer).WithTimeout()) > 0)
            {
                answer.Write(buffer, 0, n);
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
        }

        return Encoding.UTF8.GetString(answer.ToArray());
    }
}
