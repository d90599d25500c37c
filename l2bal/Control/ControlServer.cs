using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Diagnostics;

namespace L2Balance.Balancer.Control;

/// <summary>One request from <c>l2bal status|owner|drain|undrain</c>, answered by the daemon's loop.</summary>
internal sealed record ControlRequest(string Text, TaskCompletionSource<string> Reply);

/// <summary>
/// The control socket: an abstract unix socket "@l2bal" by default, which is per network
/// namespace, so each node of a lab on one machine has its own and commands reach their own
/// daemon with no options (docs/design.md#control-and-status). One line in, the answer out, close.
/// Reads are served to anyone, changes only to root or the control group, by the credentials the
/// kernel stamps on the connection (<see cref="ControlAccess"/>); requests are handed to the
/// daemon's loop, which owns all state.
/// </summary>
internal sealed class ControlServer : IAsyncDisposable
{
    /// <summary>The default abstract socket name (a leading NUL in the address).</summary>
    public const string DefaultName = "l2bal";

    /// <summary>The first pause after a failed accept (EMFILE, ENOBUFS), doubled up to <see cref="MaxAcceptBackoff"/> while failures repeat.</summary>
    public static readonly TimeSpan MinAcceptBackoff = TimeSpan.FromMilliseconds(50);

    /// <summary>A second: a daemon out of descriptors answers again within a second of getting some back.</summary>
    public static readonly TimeSpan MaxAcceptBackoff = TimeSpan.FromSeconds(1);

    private const int MaxRequestBytes = 256;
    private readonly Socket _listener;
    private readonly Channel<ControlRequest> _requests = Channel.CreateBounded<ControlRequest>(16);
    private readonly CancellationTokenSource _stop = new();
    private readonly ControlGroup? _changeGroup;
    private readonly BalancerCounters _counters;
    private readonly BalancerLog _log;
    private readonly Task _loop;
    private volatile Action? _queued;

    /// <summary>Listens on <paramref name="path"/>, or on the abstract default when null; changes are served to root and <paramref name="changeGroup"/>.</summary>
    public ControlServer(string? path, ControlGroup? changeGroup, BalancerCounters counters, BalancerLog log)
    {
        _changeGroup = changeGroup;
        _counters = counters;
        _log = log;
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        if (path is not null && File.Exists(path))
        {
            File.Delete(path);
        }
        try
        {
            _listener.Bind(EndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            _listener.Dispose();
            throw new IOException($"the control socket {Describe(path)} is held by {Holder(path)}: another l2bal runs in this network namespace, or a local user took the name", e);
        }
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

    /// <summary>Who listens on the control socket, in words, as the kernel names it.</summary>
    private static string Holder(string? path)
    {
        try
        {
            using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            probe.Connect(EndPoint(path));
            var holder = PeerCredentials.Of(probe);
            return string.Create(CultureInfo.InvariantCulture, $"uid {holder.Uid} (pid {holder.Pid})");
        }
        catch (SocketException)
        {
            return "a process that does not accept";
        }
    }

    /// <summary>The socket as messages name it: the path, or <c>@l2bal</c>.</summary>
    public static string Describe(string? path) => path ?? "@" + DefaultName;

    /// <summary>Accepts until the daemon stops; a failed accept (out of descriptors, memory) is counted, logged and retried after a growing pause.</summary>
    private async Task AcceptLoopAsync()
    {
        var backoff = MinAcceptBackoff;
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
                backoff = MinAcceptBackoff;
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is SocketException or IOException or InvalidOperationException)
            {
                _log.ControlAcceptFailed(e.Message, backoff, _counters.ControlAcceptFailed());
                try
                {
                    await Task.Delay(backoff, _stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                backoff = backoff * 2 < MaxAcceptBackoff ? backoff * 2 : MaxAcceptBackoff;
                continue;
            }
            _ = ServeAsync(client);
        }
    }

    /// <summary>The refusal a caller without the privilege of a change reads, or null when the request may be served.</summary>
    private string? Refusal(string text, Socket client)
    {
        var kind = ControlAccess.Classify(text);
        if (kind == ControlRequestKind.Read)
        {
            return null;
        }
        PeerCredentials? peer;
        try
        {
            peer = PeerCredentials.Of(client);
        }
        catch (SocketException)
        {
            peer = null; // the caller is gone or unknown: nothing it may change
        }
        if (peer is not null && ControlAccess.MayServe(kind, peer, _changeGroup?.Gid))
        {
            return null;
        }
        var who = peer is null ? "an unknown caller" : string.Create(CultureInfo.InvariantCulture, $"uid {peer.Uid} (pid {peer.Pid})");
        var verb = ControlAccess.VerbOf(text);
        _log.ControlRefused(verb, who, _counters.ControlRefused());
        var allowed = _changeGroup is { } group
            ? $"root or a member of group '{group.Name}' (--control-group)"
            : "root (or a member of the group given by --control-group, which this daemon has not)";
        return $"error: refused: '{verb}' changes this node and needs {allowed}; the caller is {who}\n";
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
                if (Refusal(text, client) is { } refusal)
                {
                    await client.SendAsync(Encoding.UTF8.GetBytes(refusal), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    return;
                }
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
        // Before a word is sent: anyone may bind the name while no daemon holds it (docs/design.md#control-and-status).
        var listener = PeerCredentials.Of(socket);
        if (!ControlAccess.TrustsDaemon(listener.Uid, SystemAccounts.EffectiveUserId, SystemAccounts.UserId(SystemAccounts.DaemonAccount)))
        {
            throw new UnauthorizedAccessException(string.Create(CultureInfo.InvariantCulture,
                $"refusing to talk to {Describe(path)}: it is held by uid {listener.Uid} (pid {listener.Pid}), not by root, user '{SystemAccounts.DaemonAccount}' or yourself; another local user may be impersonating the daemon: stop pid {listener.Pid} and restart l2bal"));
        }
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
