using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using L2Balance.Proxy.Diagnostics;
using Sys = L2Balance.Proxy.Interop.Interop.WorkerChannel;

namespace L2Balance.Proxy.Workers;

/// <summary>
/// The message channel between the supervisor and one worker (docs/conventions.md §16): a unix stream
/// socketpair made per spawn, the worker's end inherited as a numbered descriptor. A message is a
/// header (length of the rest, u32 big-endian; the request number, u32) and UTF-8 text: a request line
/// of the migration control socket one way, its answer the other. Every length is checked against
/// <see cref="MaxMessage"/> before anything is read or allocated; a bad message closes the channel.
/// </summary>
internal sealed class WorkerChannel : IDisposable
{
    /// <summary>The variable that names the worker's end (a descriptor number) to the worker.</summary>
    public const string DescriptorVariable = "L2PROXY_WORKER_CHANNEL_FD";

    /// <summary>Header: length of the rest (number and text), then the request number.</summary>
    public const int HeaderLength = 8;

    /// <summary>Largest text: a <c>list</c> of tens of thousands of sessions (about 150 bytes each) fits.</summary>
    public const int MaxMessage = 8 * 1024 * 1024;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Socket _socket;
    private readonly SemaphoreSlim _send = new(1);

    public WorkerChannel(Socket socket) => _socket = socket;

    /// <summary>One message: the header, then the text.</summary>
    public static byte[] Encode(uint number, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var length = StrictUtf8.GetByteCount(text);
        if (length > MaxMessage)
        {
            throw new ArgumentException($"a worker message holds at most {MaxMessage} bytes, not {length}", nameof(text));
        }
        var message = new byte[HeaderLength + length];
        BinaryPrimitives.WriteUInt32BigEndian(message, (uint)(length + 4));
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(4), number);
        StrictUtf8.GetBytes(text, message.AsSpan(HeaderLength));
        return message;
    }

    /// <summary>The request number and text length a header announces; false when the length is out of bounds.</summary>
    public static bool TryParseHeader(ReadOnlySpan<byte> header, out uint number, out int textLength)
    {
        number = 0;
        textLength = 0;
        if (header.Length < HeaderLength)
        {
            return false;
        }
        var rest = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (rest < 4 || rest - 4 > MaxMessage)
        {
            return false;
        }
        number = BinaryPrimitives.ReadUInt32BigEndian(header[4..]);
        textLength = (int)(rest - 4);
        return true;
    }

    /// <summary>The text of a message body; null when it is not UTF-8.</summary>
    public static string? DecodeText(ReadOnlySpan<byte> body)
    {
        try
        {
            return StrictUtf8.GetString(body);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    /// <summary>
    /// Sends one message; concurrent senders go one at a time. Only the wait for the turn is cancellable:
    /// a message cut in the middle would leave the stream out of step (a caller bounds its wait with WaitAsync).
    /// </summary>
    public async Task SendAsync(uint number, string text, CancellationToken cancellationToken)
    {
        var message = Encode(number, text);
        await _send.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _socket.SendAsync(message, SocketFlags.None, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            _send.Release();
        }
    }

    /// <summary>The next message, or null when the other end closed; <see cref="InvalidDataException"/> for a bad one.</summary>
    public async Task<(uint Number, string Text)?> ReceiveAsync(CancellationToken cancellationToken)
    {
        var header = new byte[HeaderLength];
        if (!await FillAsync(header, cancellationToken).ConfigureAwait(false))
        {
            return null;
        }
        if (!TryParseHeader(header, out var number, out var length))
        {
            throw new InvalidDataException($"worker channel: a message announces {BinaryPrimitives.ReadUInt32BigEndian(header)} bytes (at most {MaxMessage + 4})");
        }
        var body = new byte[length];
        if (!await FillAsync(body, cancellationToken).ConfigureAwait(false))
        {
            throw new InvalidDataException("worker channel: closed mid-message");
        }
        return (number, DecodeText(body) ?? throw new InvalidDataException("worker channel: a message is not UTF-8"));
    }

    private async Task<bool> FillAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            var n = await _socket.ReceiveAsync(buffer[filled..], SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return filled == 0 && buffer.Length > 0 ? false : throw new InvalidDataException("worker channel: closed mid-message");
            }
            filled += n;
        }
        return true;
    }

    /// <summary>
    /// A connected pair: the supervisor's end, and the worker's end as a descriptor that the next spawn
    /// inherits (close-on-exec cleared). Spawns are serialized (WorkerSupervisor's lock), so no other
    /// worker inherits it; the caller closes it once the worker is started.
    /// </summary>
    public static (Socket Supervisor, SafeSocketHandle Worker) CreatePair(bool inheritable)
    {
        Span<int> fds = stackalloc int[2];
        if (Sys.socketpair(Sys.AF_UNIX, Sys.SOCK_STREAM | Sys.SOCK_CLOEXEC, 0, fds) != 0)
        {
            throw new IOException($"socketpair: errno {Marshal.GetLastPInvokeError()}");
        }
        var worker = new SafeSocketHandle(fds[1], ownsHandle: true);
        Socket supervisor;
        try
        {
            supervisor = new Socket(new SafeSocketHandle(fds[0], ownsHandle: true));
            if (inheritable && Sys.fcntl(fds[1], Sys.F_SETFD, 0) != 0)
            {
                supervisor.Dispose();
                throw new IOException($"fcntl(F_SETFD): errno {Marshal.GetLastPInvokeError()}");
            }
        }
        catch
        {
            worker.Dispose();
            throw;
        }
        return (supervisor, worker);
    }

    /// <summary>In a worker: its end of the channel, named by <see cref="DescriptorVariable"/>; null when there is none.</summary>
    public static Socket? FromEnvironment()
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable(DescriptorVariable), NumberStyles.None, CultureInfo.InvariantCulture, out var fd) || fd < 3)
        {
            return null;
        }
        Environment.SetEnvironmentVariable(DescriptorVariable, null);
        // Not passed on to anything this worker might start.
        _ = Sys.fcntl(fd, Sys.F_SETFD, Sys.FD_CLOEXEC);
        try
        {
            return new Socket(new SafeSocketHandle(fd, ownsHandle: true));
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>
    /// In a worker: answers each request with <paramref name="answer"/>, several at once (a <c>key</c>
    /// does not wait behind a <c>move</c>), until the supervisor's end closes or a message is bad.
    /// </summary>
    public static async Task ServeAsync(Socket socket, Func<string, Task<string>> answer, ProxyLog log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(answer);
        ArgumentNullException.ThrowIfNull(log);
        using var channel = new WorkerChannel(socket);
        var running = new List<Task>();
        try
        {
            while (await channel.ReceiveAsync(cancellationToken).ConfigureAwait(false) is { } request)
            {
                running.RemoveAll(t => t.IsCompleted);
                running.Add(AnswerOneAsync(channel, request.Number, request.Text, answer, log, cancellationToken));
            }
        }
        catch (Exception e) when (e is InvalidDataException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The supervisor went away or spoke out of turn: this worker's sessions are no longer steered.
        }
        await Task.WhenAll(running).ConfigureAwait(false);
    }

    private static async Task AnswerOneAsync(WorkerChannel channel, uint number, string line, Func<string, Task<string>> answer, ProxyLog log, CancellationToken cancellationToken)
    {
        try
        {
            string text;
            try
            {
                text = await answer(line).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.Unexpected("migration request in a worker", e);
                text = $"error: internal error ({e.GetType().Name}); see the log\n";
            }
            await channel.SendAsync(number, text, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException or ArgumentException)
        {
            // The supervisor is gone, or the answer does not fit: it times out there and answers for these sessions.
        }
    }

    public void Dispose()
    {
        _socket.Dispose();
        _send.Dispose();
    }
}
