using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace L2Balance.Common.Metrics;

/// <summary>
/// The HTTP endpoint Prometheus scrapes: a minimal HTTP/1.1 responder on a raw socket that answers
/// <c>GET /metrics</c> (and <c>HEAD</c>) with the rendered text exposition and closes each
/// connection. A web host would bring a framework for one route; a scraper needs only this much.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>Other paths get 404, other methods 405 (with <c>Allow: GET, HEAD</c>), a request that is
/// not HTTP/1.x 400; a request head over 8 KiB gets 431.</item>
/// <item>A client has 5 s to send its request head and 5 s to take the answer; at most 8 clients
/// are served at once and further connections are closed at once, so a slow or hostile client
/// holds neither the endpoint nor the process's descriptors.</item>
/// <item>Rendering that throws becomes 500 with the exception's message (and is reported to
/// <c>renderFailed</c>); rendering that takes over 5 s becomes 503. Neither stops the endpoint.</item>
/// <item>An accept that fails (EMFILE, or anything else) is counted (<see cref="AcceptFailures"/>), reported to
/// <c>acceptFailed</c> and retried after a pause that starts at 50 ms and doubles up to 1 s while failures repeat.</item>
/// </list>
/// </remarks>
public sealed class MetricsEndpoint : IAsyncDisposable
{
    private const int SolSocket = 1;
    private const int SoReuseAddr = 2;
    private static readonly TimeSpan AcceptRetryDelay = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxAcceptRetryDelay = TimeSpan.FromSeconds(1);
    private static readonly SearchValues<byte> Separators = SearchValues.Create("\"(),/:;<=>?@[\\]{}"u8);
    private readonly Socket _listener;
    private readonly Func<Task<string>> _render;
    private readonly Action<Exception>? _acceptFailed;
    private readonly Action<Exception>? _renderFailed;
    private readonly MetricsEndpointLimits _limits;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _acceptLoop;
    private int _serving;
    private long _acceptFailures;

    /// <summary>Binds to <paramref name="endPoint"/>, listens and starts answering scrapes.</summary>
    /// <param name="endPoint">Where to listen; port 0 picks a free port (see <see cref="LocalEndPoint"/>).</param>
    /// <param name="render">
    /// Renders the exposition (e.g. with <see cref="PrometheusWriter"/>), once per GET or HEAD of
    /// <c>/metrics</c>, on a thread-pool thread.
    /// </param>
    /// <param name="acceptFailed">Told of each failed accept (the endpoint retries): a <see cref="SocketException"/> such as EMFILE, or anything unexpected.</param>
    /// <param name="renderFailed">Told of each exception <paramref name="render"/> threw (the scraper got 500); must not throw.</param>
    /// <exception cref="InvalidOperationException">The address cannot be bound; the message names it and the socket error.</exception>
    public MetricsEndpoint(IPEndPoint endPoint, Func<Task<string>> render, Action<Exception>? acceptFailed = null, Action<Exception>? renderFailed = null)
        : this(endPoint, render, acceptFailed, renderFailed, MetricsEndpointLimits.Default)
    {
    }

    /// <summary>As the public constructor, with other limits (tests shorten the timeouts).</summary>
    internal MetricsEndpoint(IPEndPoint endPoint, Func<Task<string>> render, Action<Exception>? acceptFailed, Action<Exception>? renderFailed, MetricsEndpointLimits limits)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        ArgumentNullException.ThrowIfNull(render);
        _render = render;
        _acceptFailed = acceptFailed;
        _renderFailed = renderFailed;
        _limits = limits;
        _listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // SO_REUSEADDR alone (rebinding past TIME_WAIT after a restart): .NET's ReuseAddress also sets
            // SO_REUSEPORT, which would let a second instance bind the same port and take half the scrapes.
            _listener.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
            _listener.Bind(endPoint);
            _listener.Listen(16);
        }
        catch (SocketException e)
        {
            _listener.Dispose();
            _stopping.Dispose();
            throw new InvalidOperationException($"cannot listen for metrics on {endPoint}: {e.SocketErrorCode} ({e.Message})", e);
        }

        LocalEndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _acceptLoop = AcceptLoopAsync();
    }

    /// <summary>The bound address, with the port the kernel chose when 0 was asked for.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Accepts that failed and were retried since the endpoint started.</summary>
    public long AcceptFailures => Interlocked.Read(ref _acceptFailures);

    /// <summary>Stops accepting, closes the listener and ends the exchanges in progress.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _acceptLoop.ConfigureAwait(false);
    }

    /// <summary>What a request head asks for; anything but <see cref="Route.Get"/> and <see cref="Route.Head"/> is refused.</summary>
    internal enum Route
    {
        Get,
        Head,
        BadRequest,
        MethodNotAllowed,
        NotFound,
    }

    /// <summary>
    /// Classifies a request head (request line and header lines, each ended by CRLF or LF, up to the
    /// empty line). Only origin-form targets of HTTP/1.0 and HTTP/1.1 are understood.
    /// </summary>
    internal static Route Classify(ReadOnlySpan<byte> head)
    {
        var end = head.IndexOf((byte)'\n');
        if (end < 0)
        {
            return Route.BadRequest;
        }

        var line = TrimCr(head[..end]);
        var firstSpace = line.IndexOf((byte)' ');
        var lastSpace = line.LastIndexOf((byte)' ');
        if (firstSpace <= 0 || lastSpace <= firstSpace + 1 || line[(firstSpace + 1)..lastSpace].Contains((byte)' '))
        {
            return Route.BadRequest;
        }

        var method = line[..firstSpace];
        var target = line[(firstSpace + 1)..lastSpace];
        var version = line[(lastSpace + 1)..];
        if (!IsToken(method) || !IsVisibleAscii(target) || target[0] != '/' || !IsHttp1(version) || !HeaderLinesAreWellFormed(head[(end + 1)..]))
        {
            return Route.BadRequest;
        }

        var get = method.SequenceEqual("GET"u8);
        if (!get && !method.SequenceEqual("HEAD"u8))
        {
            return Route.MethodNotAllowed;
        }

        var query = target.IndexOf((byte)'?');
        var path = query < 0 ? target : target[..query];
        if (!path.SequenceEqual("/metrics"u8))
        {
            return Route.NotFound;
        }

        return get ? Route.Get : Route.Head;
    }

    private async Task AcceptLoopAsync()
    {
        var delay = AcceptRetryDelay;
        while (true)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
                delay = AcceptRetryDelay;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException || _stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // EMFILE, or anything else: count, report, and back off so that a full descriptor table does not spin a core.
                Interlocked.Increment(ref _acceptFailures);
                try
                {
                    _acceptFailed?.Invoke(e);
                }
                catch (Exception reportFailed) when (reportFailed is not OutOfMemoryException)
                {
                    // The report is the caller's; its failure must not end the endpoint (the failure is counted already).
                }

                try
                {
                    await Task.Delay(delay, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                delay = delay * 2 > MaxAcceptRetryDelay ? MaxAcceptRetryDelay : delay * 2;
                continue;
            }

            if (Interlocked.Increment(ref _serving) > _limits.MaxClients)
            {
                Interlocked.Decrement(ref _serving);
                client.Dispose();
                continue;
            }

            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        try
        {
            var response = await ReadAndAnswerAsync(client).ConfigureAwait(false);
            if (response is { } answer)
            {
                await SendAsync(client, answer).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // A client that disconnects or stalls loses its answer; nothing else is at stake.
        }
        finally
        {
            client.Dispose();
            Interlocked.Decrement(ref _serving);
        }
    }

    /// <summary>Reads the request head and produces the answer; null when the client went away without asking.</summary>
    private async Task<Response?> ReadAndAnswerAsync(Socket client)
    {
        var buffer = new byte[_limits.MaxRequestBytes];
        var length = 0;
        using (var reading = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token))
        {
            reading.CancelAfter(_limits.ReadTimeout);
            while (HeadLength(buffer.AsSpan(0, length)) < 0)
            {
                if (length == buffer.Length)
                {
                    return Response.Text("431 Request Header Fields Too Large", $"the request head exceeds {buffer.Length} bytes\n");
                }

                int received;
                try
                {
                    received = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, reading.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!_stopping.IsCancellationRequested)
                {
                    return Response.Text("408 Request Timeout", $"no complete request head within {_limits.ReadTimeout.TotalSeconds:0.###} s\n");
                }

                if (received == 0)
                {
                    return length == 0 ? null : Response.Text("400 Bad Request", "the connection was closed inside the request head\n");
                }

                length += received;
            }
        }

        return Classify(buffer.AsSpan(0, length)) switch
        {
            Route.Get => await RenderAsync(headOnly: false).ConfigureAwait(false),
            Route.Head => await RenderAsync(headOnly: true).ConfigureAwait(false),
            Route.MethodNotAllowed => Response.Text("405 Method Not Allowed", "only GET and HEAD\n") with { Allow = "GET, HEAD" },
            Route.NotFound => Response.Text("404 Not Found", "the metrics are at /metrics\n"),
            _ => Response.Text("400 Bad Request", "not an HTTP/1.x request\n"),
        };
    }

    private async Task<Response> RenderAsync(bool headOnly)
    {
        string body;
        try
        {
            body = await _render().WaitAsync(_limits.RenderTimeout, _stopping.Token).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return Response.Text("503 Service Unavailable", $"the metrics were not rendered within {_limits.RenderTimeout.TotalSeconds:0.###} s\n");
        }
        catch (Exception e) when (e is not OperationCanceledException || !_stopping.IsCancellationRequested)
        {
            _renderFailed?.Invoke(e);
            return Response.Text("500 Internal Server Error", $"rendering the metrics failed: {e.Message}\n");
        }

        return new Response("200 OK", PrometheusWriter.ContentType, body ?? "", headOnly);
    }

    private async Task SendAsync(Socket client, Response response)
    {
        var body = Encoding.UTF8.GetBytes(response.Body);
        var allow = response.Allow is null ? "" : $"Allow: {response.Allow}\r\n";
        var head = Encoding.ASCII.GetBytes(
            $"HTTP/1.1 {response.Status}\r\nContent-Type: {response.ContentType}\r\nContent-Length: {body.Length}\r\n{allow}Connection: close\r\n\r\n");
        var message = response.HeadOnly ? head : [.. head, .. body];
        using var sending = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        sending.CancelAfter(_limits.SendTimeout);
        await client.SendAsync(message, SocketFlags.None, sending.Token).ConfigureAwait(false);
        client.Shutdown(SocketShutdown.Send);
        // Wait for the client to close: closing with its unread bytes (a request body) queued would
        // send a reset, which can destroy the answer before the client has read it.
        var discard = new byte[1024];
        while (await client.ReceiveAsync(discard, SocketFlags.None, sending.Token).ConfigureAwait(false) > 0)
        {
        }
    }

    /// <summary>The length of the request head including its empty line, or -1 while it is incomplete.</summary>
    internal static int HeadLength(ReadOnlySpan<byte> received)
    {
        var crlf = received.IndexOf("\r\n\r\n"u8);
        var lf = received.IndexOf("\n\n"u8);
        var crlfEnd = crlf < 0 ? int.MaxValue : crlf + 4;
        var lfEnd = lf < 0 ? int.MaxValue : lf + 2;
        return Math.Min(crlfEnd, lfEnd) is var headEnd && headEnd == int.MaxValue ? -1 : headEnd;
    }

    private static bool HeaderLinesAreWellFormed(ReadOnlySpan<byte> lines)
    {
        while (true)
        {
            var end = lines.IndexOf((byte)'\n');
            var line = TrimCr(end < 0 ? lines : lines[..end]);
            if (line.IsEmpty)
            {
                return true;
            }

            var colon = line.IndexOf((byte)':');
            if (colon <= 0 || !IsToken(line[..colon]) || !IsFieldValue(line[(colon + 1)..]))
            {
                return false;
            }

            if (end < 0)
            {
                return true;
            }

            lines = lines[(end + 1)..];
        }
    }

    /// <summary>RFC 9110 field value: no control characters but horizontal tab.</summary>
    private static bool IsFieldValue(ReadOnlySpan<byte> value) =>
        value.IndexOfAnyInRange((byte)0x00, (byte)0x08) < 0 && value.IndexOfAnyInRange((byte)0x0a, (byte)0x1f) < 0 && !value.Contains((byte)0x7f);

    private static ReadOnlySpan<byte> TrimCr(ReadOnlySpan<byte> line) => line.EndsWith("\r"u8) ? line[..^1] : line;

    private static bool IsHttp1(ReadOnlySpan<byte> version) => version.SequenceEqual("HTTP/1.1"u8) || version.SequenceEqual("HTTP/1.0"u8);

    private static bool IsVisibleAscii(ReadOnlySpan<byte> text) => !text.IsEmpty && text.IndexOfAnyExceptInRange((byte)0x21, (byte)0x7e) < 0;

    /// <summary>RFC 9110 token: visible ASCII without separators.</summary>
    private static bool IsToken(ReadOnlySpan<byte> text) => IsVisibleAscii(text) && text.IndexOfAny(Separators) < 0;

    /// <summary>One answer; <see cref="HeadOnly"/> sends the headers of a GET without its body.</summary>
    private readonly record struct Response(string Status, string ContentType, string Body, bool HeadOnly = false)
    {
        public string? Allow { get; init; }

        public static Response Text(string status, string body) => new(status, "text/plain; charset=utf-8", body);
    }
}

/// <summary>The bounds a <see cref="MetricsEndpoint"/> puts on each client.</summary>
/// <param name="MaxRequestBytes">The largest request head read; a longer one gets 431.</param>
/// <param name="ReadTimeout">The time a client has to send its request head; a slower one gets 408.</param>
/// <param name="RenderTimeout">The time rendering may take; a slower one gets 503.</param>
/// <param name="SendTimeout">The time a client has to take its answer and close.</param>
/// <param name="MaxClients">Clients served at once; further connections are closed at once.</param>
internal sealed record MetricsEndpointLimits(int MaxRequestBytes, TimeSpan ReadTimeout, TimeSpan RenderTimeout, TimeSpan SendTimeout, int MaxClients)
{
    /// <summary>8 KiB, 5 s, 5 s, 5 s and 8 clients: a scraper needs a fraction of each.</summary>
    public static MetricsEndpointLimits Default { get; } = new(8 * 1024, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5), 8);
}
