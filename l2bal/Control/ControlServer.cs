using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace L2Balance.Balancer.Control;

/// <summary>One request from <c>l2bal status|owner|drain|undrain</c>, answered by the daemon's loop.</summary>
internal sealed record ControlRequest(string Text, TaskCompletionSource<string> Reply);

/// <summary>
/// The control socket: an abstract unix socket "@l2bal" by default, which is per network
/// namespace, so each node of a lab on one machine has its own and commands reach their own
/// daemon with no options (docs/design.md#control-and-status). One line in, the answer out, close.
/// Requests are handed to the daemon's loop, which owns all state.
/// </summary>
internal sealed class ControlServer : IAsyncDisposable
{
    /// <summary>The default abstract socket name (a leading NUL in the address).</summary>
    public const string DefaultName = "l2bal";

    private const int MaxRequestBytes = 256;
    private readonly Socket _listener;
    private readonly Channel<ControlRequest> _requests = Channel.CreateBounded<ControlRequest>(16);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private volatile Action? _queued;

    /// <summary>Listens on <paramref name="path"/>, or on the abstract default when null.</summary>
    public ControlServer(string? path)
    {
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        if (path is not null && File.Exists(path))
        {
            File.Delete(path);
        }
        _listener.Bind(EndPoint(path));
        _listener.Listen(16);
        _loop = AcceptLoopAsync();
    }

    /// <summary>Runs after each request is queued: wakes the daemon's loop.</summary>
    public Action? Queued
    {
        get => _queued;
        set => _queued = value;
    }

    /// <summary>Requests waiting for the daemon's loop.</summary>
    public ChannelReader<ControlRequest> Requests => _requests.Reader;

    public static UnixDomainSocketEndPoint EndPoint(string? path) => new(path ?? "\0" + DefaultName);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = ServeAsync(client);
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
                var buffer = new byte[MaxRequestBytes];
                var length = 0;
                while (length < buffer.Length && Array.IndexOf(buffer, (byte)'\n', 0, length) < 0)
                {
                    var n = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        break;
                    }
                    length += n;
                }
                var text = Encoding.UTF8.GetString(buffer, 0, length).Trim();
                var request = new ControlRequest(text, new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously));
                await _requests.Writer.WriteAsync(request, timeout.Token).ConfigureAwait(false);
                _queued?.Invoke();
                var answer = await request.Reply.Task.WaitAsync(timeout.Token).ConfigureAwait(false);
                await client.SendAsync(Encoding.UTF8.GetBytes(answer), SocketFlags.None, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                // A client that goes away or a daemon that stops: nothing to answer.
            }
        }
    }

    /// <summary>Sends one request to a running daemon and returns its answer (the client side).</summary>
    public static async Task<string> SendAsync(string? path, string request, TimeSpan timeout)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using var cts = new CancellationTokenSource(timeout);
        await socket.ConnectAsync(EndPoint(path), cts.Token).ConfigureAwait(false);
        await socket.SendAsync(Encoding.UTF8.GetBytes(request + "\n"), SocketFlags.None, cts.Token).ConfigureAwait(false);
        var answer = new StringBuilder();
        var buffer = new byte[8192];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token).ConfigureAwait(false)) > 0)
        {
            answer.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }
        return answer.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
