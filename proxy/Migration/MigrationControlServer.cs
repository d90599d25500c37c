using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Server;
using static L2Balance.Proxy.Interop.Interop;

namespace L2Balance.Proxy.Migration;

/// <summary>
/// The migration control socket (issue 19, docs/design.md#live-migration-design): the abstract unix
/// socket <c>@l2proxy-migrate</c> by default, per network namespace as l2bal's <c>@l2bal</c>, or a path
/// (<c>--migrate-control</c>). One request line in, the answer's lines out, close. Only root, the
/// <c>l2bal</c> user and l2proxy's own user may ask, by the credentials the kernel stamps (SO_PEERCRED).
/// </summary>
internal sealed class MigrationControlServer : IAsyncDisposable
{
    /// <summary>The default name: abstract (a leading NUL in the address).</summary>
    public const string DefaultName = "@l2proxy-migrate";

    /// <summary>The user l2bal runs as (packaging/), the other side of this socket.</summary>
    private const string BalancerUser = "l2bal";

    /// <summary>A request line: a move of <see cref="MigrationControlRequest.MaxMoveIds"/> ids fits.</summary>
    private const int MaxRequestBytes = 128 * 1024;

    private const int SOL_SOCKET = 1;
    private const int SO_PEERCRED = 17;

    /// <summary>A move of a large batch takes seconds at worst (pause, channel, answers: MigrationService's timeouts).</summary>
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    private readonly Socket _listener;
    private readonly Func<string, Task<string>> _answer;
    private readonly uint[] _allowed;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly ProxyLog _log;

    private MigrationControlServer(Socket listener, Func<string, Task<string>> answer, ProxyLog log)
    {
        _listener = listener;
        _answer = answer;
        _log = log;
        _allowed = [0, Credentials.geteuid(), .. Privileges.UidOf(BalancerUser) is { } uid ? [uid] : Array.Empty<uint>()];
        _loop = AcceptLoopAsync();
    }

    /// <summary>Serves <paramref name="name"/> (<c>@NAME</c> abstract, else a path); null with a warning logged when it cannot be bound.</summary>
    public static MigrationControlServer? TryStart(string? name, Func<string, Task<string>> answer, ProxyLog log)
    {
        ArgumentNullException.ThrowIfNull(answer);
        ArgumentNullException.ThrowIfNull(log);
        name ??= DefaultName;
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            if (!name.StartsWith('@') && File.Exists(name))
            {
                File.Delete(name);
            }
            listener.Bind(new UnixDomainSocketEndPoint(name.StartsWith('@') ? "\0" + name[1..] : name));
            listener.Listen(16);
            return new MigrationControlServer(listener, answer, log);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            listener.Dispose();
            log.MigrationControlUnavailable(name, e is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } ? "the name is taken (another l2proxy in this network namespace?)" : e.Message);
            return null;
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                if (_stop.IsCancellationRequested)
                {
                    return;
                }
                // Out of descriptors: a local caller retries; do not spin.
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
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(RequestTimeout);
                Span<byte> ucred = stackalloc byte[12];
                client.GetRawSocketOption(SOL_SOCKET, SO_PEERCRED, ucred);
                uint uid = BinaryPrimitives.ReadUInt32LittleEndian(ucred[4..]);
                string answer;
                if (Array.IndexOf(_allowed, uid) < 0)
                {
                    answer = string.Create(CultureInfo.InvariantCulture, $"error: refused: uid {uid} may not steer migrations (root, the {BalancerUser} user or l2proxy's own user)\n");
                }
                else
                {
                    var line = await ReadLineAsync(client, timeout.Token).ConfigureAwait(false);
                    answer = line is null ? $"error: no request line within {MaxRequestBytes} bytes\n" : await AnswerAsync(line).ConfigureAwait(false);
                }
                await client.SendAsync(Encoding.UTF8.GetBytes(answer), SocketFlags.None, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // A caller that goes away, or a stop: nothing to answer.
            }
        }
    }

    /// <summary>The answer, or an error line when answering failed unexpectedly (logged with its exception).</summary>
    private async Task<string> AnswerAsync(string line)
    {
        try
        {
            return await _answer(line).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _log.Unexpected("migration control request", e);
            return $"error: internal error ({e.GetType().Name}); see the log\n";
        }
    }

    /// <summary>The first line (up to a newline or the caller's half-close), or null when it does not fit.</summary>
    private static async Task<string?> ReadLineAsync(Socket client, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxRequestBytes];
        int length = 0;
        while (length < buffer.Length)
        {
            int n = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }
            length += n;
            int newline = Array.IndexOf(buffer, (byte)'\n', length - n, n);
            if (newline >= 0)
            {
                return Encoding.UTF8.GetString(buffer, 0, newline).Trim();
            }
        }
        return length < buffer.Length ? Encoding.UTF8.GetString(buffer, 0, length).Trim() : null;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }
}
