using System.Net;
using System.Net.Sockets;
using System.Text;

namespace L2Balance.Proxy.Diagnostics;

/// <summary>
/// <c>--metrics ADDR:PORT</c>: a minimal HTTP/1.1 responder on a raw socket that answers
/// <c>GET /metrics</c> (and <c>GET /</c>) with <see cref="ProxyCounters.WritePrometheus"/> and closes
/// the connection. Kestrel would add a web host for one route; Prometheus only needs this much.
/// Requests are bounded in size (8 KiB) and time (5 s).
/// </summary>
public sealed class MetricsEndpoint : IAsyncDisposable
{
    private const int MaxRequestBytes = 8 * 1024;
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);
    private readonly ProxyCounters _counters;
    private readonly ProxyLog _log;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private Task _acceptLoop = Task.CompletedTask;

    /// <summary>Binds and listens on <paramref name="endPoint"/>; throws <see cref="InvalidOperationException"/> naming it on failure.</summary>
    public MetricsEndpoint(IPEndPoint endPoint, ProxyCounters counters, ProxyLog log)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        _counters = counters;
        _log = log;
        _listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            _listener.Bind(endPoint);
            _listener.Listen(64);
        }
        catch (SocketException e)
        {
            _listener.Dispose();
            _stopping.Dispose();
            throw new InvalidOperationException($"cannot listen for metrics on {endPoint}: {e.SocketErrorCode} ({e.Message})", e);
        }
    }

    /// <summary>The bound address (port resolved).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    /// <summary>Starts answering scrapes.</summary>
    public void Start()
    {
        _log.Listening(_listener.LocalEndPoint!);
        _acceptLoop = AcceptLoopAsync();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                _log.AcceptError(_listener.LocalEndPoint!, e.SocketErrorCode.ToString());
                await Task.Delay(TimeSpan.FromMilliseconds(50)).ConfigureAwait(false);
                continue;
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using (client)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(RequestTimeout);
            try
            {
                var request = new byte[MaxRequestBytes];
                int length = 0;
                while (request.AsSpan(0, length).IndexOf("\r\n\r\n"u8) < 0)
                {
                    if (length == request.Length)
                    {
                        await SendAsync(client, "431 Request Header Fields Too Large", "text/plain", "request too large\n", timeout.Token).ConfigureAwait(false);
                        return;
                    }
                    int n = await client.ReceiveAsync(request.AsMemory(length), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        return;
                    }
                    length += n;
                }
                var (status, type, body) = Respond(request.AsSpan(0, length));
                await SendAsync(client, status, type, body, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // A scraper that disconnects or stalls loses its answer; nothing else to do.
            }
        }
    }

    /// <summary>The answer to one request head: only GET of /metrics or / is served.</summary>
    internal (string Status, string ContentType, string Body) Respond(ReadOnlySpan<byte> head)
    {
        var line = head[..head.IndexOf("\r\n"u8)];
        var parts = Encoding.ASCII.GetString(line).Split(' ');
        if (parts.Length != 3 || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
        {
            return ("400 Bad Request", "text/plain", "bad request\n");
        }
        if (parts[0] != "GET")
        {
            return ("405 Method Not Allowed", "text/plain", "only GET\n");
        }
        var path = parts[1].Split('?')[0];
        if (path is not ("/metrics" or "/"))
        {
            return ("404 Not Found", "text/plain", "try /metrics\n");
        }
        var body = new StringBuilder(4096);
        _counters.WritePrometheus(body);
        return ("200 OK", ProxyCounters.PrometheusContentType, body.ToString());
    }

    private static async Task SendAsync(Socket client, string status, string contentType, string body, CancellationToken cancellationToken)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var head = Encoding.ASCII.GetBytes($"HTTP/1.1 {status}\r\nContent-Type: {contentType}\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n");
        await client.SendAsync(head, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        await client.SendAsync(bytes, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        client.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Stops answering and closes the listener.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        _stopping.Dispose();
    }
}
