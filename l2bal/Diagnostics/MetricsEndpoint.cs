using System.Net;
using System.Net.Sockets;
using System.Text;

namespace L2Balance.Balancer.Diagnostics;

/// <summary>
/// A minimal HTTP/1.1 responder for Prometheus scrapes: every request gets the current text
/// exposition (format 0.0.4). Requests are bounded in size and time.
/// </summary>
internal sealed class MetricsEndpoint : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly Func<Task<string>> _render;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public MetricsEndpoint(IPEndPoint endPoint, Func<Task<string>> render)
    {
        _render = render;
        _listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(endPoint);
        _listener.Listen(16);
        _loop = AcceptLoopAsync();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
                _ = ServeAsync(client);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using (client)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                var buffer = new byte[4096];
                var length = 0;
                while (length < buffer.Length)
                {
                    var n = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        return;
                    }
                    length += n;
                    if (buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8) >= 0)
                    {
                        break;
                    }
                }
                var body = Encoding.UTF8.GetBytes(await _render().WaitAsync(timeout.Token).ConfigureAwait(false));
                var head = Encoding.ASCII.GetBytes(
                    $"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n");
                await client.SendAsync(head, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                await client.SendAsync(body, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
