using System.Buffers;
using System.Net.Sockets;
using L2Balance.Proxy.Interop;
using L2Balance.Proxy.Server;
using Splice = L2Balance.Proxy.Interop.Interop.Splice;

namespace L2Balance.Proxy.Relay;

/// <summary>How one direction of a relay ended (Kestrel ConnectionReadFin / ConnectionWriteFin).</summary>
internal enum PumpEnd
{
    /// <summary>The reading side sent FIN; the FIN was passed on (half-close).</summary>
    ReadFin,
    /// <summary>Reading failed (reset, abort).</summary>
    ReadError,
    /// <summary>Writing failed (the other side reset).</summary>
    WriteError,
    /// <summary>The session closed the sockets (timeout, shutdown, the other direction failed).</summary>
    Aborted,
    /// <summary>Stopped on request to move the session (issue 19); the bytes it had read and not sent are in <see cref="PumpResult.Held"/>.</summary>
    Paused,
}

/// <summary>How one direction of a relay ended.</summary>
/// <param name="Bytes">The bytes it moved.</param>
/// <param name="End">How it ended.</param>
/// <param name="Error">The socket error of a failed read or write.</param>
/// <param name="Held">For <see cref="PumpEnd.Paused"/>: bytes read from one side and not yet written to the other, in order.</param>
internal readonly record struct PumpResult(long Bytes, PumpEnd End, SocketError Error, byte[]? Held = null);

/// <summary>The outcome of a whole relay: bytes each way and how each direction ended (YARP StreamCopyResult).</summary>
internal readonly record struct RelayResult(PumpResult Up, PumpResult Down)
{
    public long FromClient => Up.Bytes;

    public long ToClient => Down.Bytes;

    public bool Failed => Up.End is PumpEnd.ReadError or PumpEnd.WriteError || Down.End is PumpEnd.ReadError or PumpEnd.WriteError;

    /// <summary>A direction stopped for a move and can be resumed (<see cref="TcpRelay.RunAsync"/> with this result).</summary>
    public bool Paused => Up.End == PumpEnd.Paused || Down.End == PumpEnd.Paused;

    /// <summary>Which side ended the session and how, for the session's log line.</summary>
    public string Describe() => (Up.End, Down.End) switch
    {
        (PumpEnd.ReadError, _) => $"client error {Up.Error}",
        (PumpEnd.WriteError, _) => $"target error {Up.Error}",
        (_, PumpEnd.ReadError) => $"target error {Down.Error}",
        (_, PumpEnd.WriteError) => $"client error {Down.Error}",
        (PumpEnd.ReadFin, PumpEnd.ReadFin) => "both sides closed",
        _ => "closed",
    };
}

/// <summary>How the relay moves bytes.</summary>
internal enum RelayMode
{
    /// <summary>splice(2) socket → pipe → socket: the payload never enters user space.</summary>
    Splice,
    /// <summary>recv into a pooled 64 KiB buffer, send from it: where splice cannot be used, and for comparison.</summary>
    Copy,
}

/// <summary>
/// Copies bytes both ways between two connected TCP sockets without a thread per connection.
/// Each direction waits with a zero-byte receive, so an idle session holds no buffer and no pipe
/// (Kestrel SocketConnection); a FIN from one side is passed on as a half-close and the other
/// direction keeps running until it ends too. Both ends are TCP sockets, so by default each
/// direction moves data kernel to kernel with splice(2) through its own pipe (issue 3).
/// </summary>
internal static class TcpRelay
{
    /// <summary>64 KiB per active direction: large enough for full-rate bulk transfers on loopback-class links.</summary>
    private const int BufferSize = 64 * 1024;

    /// <summary>
    /// A splice direction copies reads of up to this many bytes through a pooled buffer until one
    /// fills it; then it makes its pipe. 16 KiB: above the small request/response messages of
    /// interactive protocols, far below a bulk transfer's reads.
    /// </summary>
    private const int SmallCopySize = 16 * 1024;

    /// <summary>The pipe's default capacity (16 pages).</summary>
    private const int DefaultPipeSize = 64 * 1024;

    /// <summary>
    /// Bytes asked of one splice, and the pipe capacity asked for (F_SETPIPE_SZ, best effort: over
    /// pipe-user-pages-soft the kernel refuses and the default stays). 1 MiB: faster than 256 KiB
    /// (docs/benchmarks.md#splice-relay). Only a direction that has read a full
    /// <see cref="SmallCopySize"/> makes a pipe, so request/response sessions take none of the quota.
    /// Hidden env L2PROXY_PIPE_SIZE overrides it for such measurements.
    /// </summary>
    private static readonly int SpliceChunk = int.TryParse(Environment.GetEnvironmentVariable("L2PROXY_PIPE_SIZE"), out var size) && size >= 4096 ? size : 1024 * 1024;

    private static int s_spliceUnsupported;

    /// <summary>
    /// The relay mode: splice unless env <c>L2PROXY_RELAY=copy</c> (a hidden switch for the
    /// benchmark's side-by-side run), or the kernel refused splice once (EINVAL, ENOSYS).
    /// </summary>
    public static RelayMode Mode { get; } = Environment.GetEnvironmentVariable("L2PROXY_RELAY") is "copy" ? RelayMode.Copy : RelayMode.Splice;

    /// <summary>
    /// Relays until both directions end, or until <paramref name="pause"/> is requested: then each
    /// direction stops where it can resume without losing or repeating a byte (between chunks, or with
    /// what it holds in <see cref="PumpResult.Held"/>). <paramref name="resume"/> continues a paused
    /// relay: its held bytes go first, a direction that had ended stays ended.
    /// </summary>
    public static async Task<RelayResult> RunAsync(Socket client, Socket target, SocksSession session, RelayPause? pause = null, RelayResult? resume = null)
    {
        var up = resume is { } r && r.Up.End != PumpEnd.Paused ? Task.FromResult(r.Up) : PumpAsync(client, target, session, fromClient: true, pause, resume?.Up);
        var down = resume is { } d && d.Down.End != PumpEnd.Paused ? Task.FromResult(d.Down) : PumpAsync(target, client, session, fromClient: false, pause, resume?.Down);
        var first = await Task.WhenAny(up, down).ConfigureAwait(false);
        if (first.Result.End is not (PumpEnd.ReadFin or PumpEnd.Paused))
        {
            // One side failed: nothing more can be delivered, end the other direction too.
            client.Dispose();
            target.Dispose();
        }
        return new RelayResult(await up.ConfigureAwait(false), await down.ConfigureAwait(false));
    }

    private static async Task<PumpResult> PumpAsync(Socket from, Socket to, SocksSession session, bool fromClient, RelayPause? pause, PumpResult? resume)
    {
        long total = resume?.Bytes ?? 0;
        if (resume?.Held is { Length: > 0 } held)
        {
            // What the paused relay held goes out first, in order.
            var (sent, end) = await SendAsync(to, held, pause, total).ConfigureAwait(false);
            total += sent;
            session.Relayed(fromClient, sent);
            if (end is { } stopped)
            {
                return stopped.End == PumpEnd.Paused ? stopped with { Held = held[sent..] } : stopped;
            }
        }
        return Mode == RelayMode.Splice && Volatile.Read(ref s_spliceUnsupported) == 0
            ? await SplicePumpAsync(from, to, session, fromClient, pause, total).ConfigureAwait(false)
            : await CopyPumpAsync(from, to, session, fromClient, total, pause).ConfigureAwait(false);
    }

    private static async Task<PumpResult> SplicePumpAsync(Socket from, Socket to, SocksSession session, bool fromClient, RelayPause? pause, long total)
    {
        var token = pause?.Token ?? CancellationToken.None;
        SafePipeHandle? pipeRead = null, pipeWrite = null;
        byte[]? oneByte = null;
        var spliced = false;
        try
        {
            while (true)
            {
                // Wait for data (or FIN) without holding a buffer; the pipe is made on first data,
                // so an idle session costs no descriptors beyond its two sockets.
                try
                {
                    // The pipe is empty here: a pause stops between chunks and holds nothing.
                    await from.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return new PumpResult(total, PumpEnd.Paused, SocketError.Success, []);
                }
                catch (SocketException e)
                {
                    return new PumpResult(total, e.SocketErrorCode == SocketError.OperationAborted ? PumpEnd.Aborted : PumpEnd.ReadError, e.SocketErrorCode);
                }
                if (pipeRead is null)
                {
                    // Until a read fills the buffer, copy: a request or response of a few bytes does
                    // not pay for a pipe (pipe2, fcntl, two closes) and the extra splices. Only a
                    // bulk transfer moves to splice (docs/benchmarks.md#splice-relay).
                    var copied = await CopyOnceAsync(from, to, total, pause).ConfigureAwait(false);
                    if (copied.End is { } end)
                    {
                        session.Relayed(fromClient, end.Bytes - total);
                        return end;
                    }
                    total += copied.Bytes;
                    session.Relayed(fromClient, copied.Bytes);
                    if (copied.Bytes < SmallCopySize)
                    {
                        continue;
                    }
                    try
                    {
                        (pipeRead, pipeWrite) = SafePipeHandle.Create();
                    }
                    catch (IOException e)
                    {
                        // No pipe (EMFILE, ENFILE): this direction copies from now on; the session goes on (issue 13).
                        session.SpliceFellBack(e.Message);
                        return await CopyPumpAsync(from, to, session, fromClient, total, pause).ConfigureAwait(false);
                    }
                    if (SpliceChunk != DefaultPipeSize)
                    {
                        _ = Splice.fcntl(pipeWrite, Splice.F_SETPIPE_SZ, SpliceChunk);
                    }
                }
                // Drain what the socket has: socket → pipe, then pipe → socket, until the socket says EAGAIN.
                while (true)
                {
                    var inPipe = Splice.Move(from.SafeHandle, pipeWrite!, SpliceChunk, more: false);
                    if (inPipe == -Splice.EAGAIN)
                    {
                        break;
                    }
                    if (inPipe < 0)
                    {
                        if (!spliced && inPipe is -Splice.EINVAL or -Splice.ENOSYS)
                        {
                            // This kernel cannot splice these sockets: copy from now on, for every session.
                            Volatile.Write(ref s_spliceUnsupported, 1);
                            return await CopyPumpAsync(from, to, session, fromClient, total, pause).ConfigureAwait(false);
                        }
                        return new PumpResult(total, PumpEnd.ReadError, ToSocketError((int)-inPipe));
                    }
                    spliced = true;
                    if (inPipe == 0)
                    {
                        ShutdownSend(to);
                        return new PumpResult(total, PumpEnd.ReadFin, SocketError.Success);
                    }
                    while (inPipe > 0)
                    {
                        var sent = Splice.Move(pipeRead, to.SafeHandle, (int)inPipe, more: false);
                        if (sent > 0)
                        {
                            inPipe -= sent;
                            total += sent;
                            session.Relayed(fromClient, sent);
                            continue;
                        }
                        if (sent != -Splice.EAGAIN)
                        {
                            return new PumpResult(total, PumpEnd.WriteError, sent == 0 ? SocketError.Shutdown : ToSocketError((int)-sent));
                        }
                        // The target's send buffer is full (back-pressure). Sockets have no public
                        // "wait until writable"; a zero-byte send completes at once. So take the next
                        // byte out of the pipe and send it with SendAsync, which waits for EPOLLOUT;
                        // order is kept and only one byte per stall passes through user space.
                        oneByte ??= new byte[1];
                        if (Splice.Read(pipeRead, oneByte) != 1)
                        {
                            return new PumpResult(total, PumpEnd.WriteError, SocketError.SocketError);
                        }
                        try
                        {
                            await to.SendAsync(oneByte, SocketFlags.None, token).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException)
                        {
                            // Paused under back-pressure: this byte and the rest of the pipe are held, in order.
                            return new PumpResult(total, PumpEnd.Paused, SocketError.Success, DrainPipe(pipeRead, oneByte[0], (int)inPipe - 1));
                        }
                        catch (SocketException e)
                        {
                            return new PumpResult(total, e.SocketErrorCode == SocketError.OperationAborted ? PumpEnd.Aborted : PumpEnd.WriteError, e.SocketErrorCode);
                        }
                        inPipe--;
                        total++;
                        session.Relayed(fromClient, 1);
                    }
                }
            }
        }
        catch (ObjectDisposedException)
        {
            return new PumpResult(total, PumpEnd.Aborted, SocketError.OperationAborted);
        }
        finally
        {
            pipeRead?.Dispose();
            pipeWrite?.Dispose();
        }
    }

    /// <summary>
    /// One read of at most <see cref="SmallCopySize"/> bytes (data is waiting: it completes at once)
    /// and its send. Returns the bytes moved, or how the direction ended (FIN passed on, an error).
    /// </summary>
    private static async ValueTask<(int Bytes, PumpResult? End)> CopyOnceAsync(Socket from, Socket to, long total, RelayPause? pause)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(SmallCopySize);
        try
        {
            int received;
            try
            {
                received = await from.ReceiveAsync(buffer.AsMemory(0, SmallCopySize), SocketFlags.None).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                return (0, new PumpResult(total, e.SocketErrorCode == SocketError.OperationAborted ? PumpEnd.Aborted : PumpEnd.ReadError, e.SocketErrorCode));
            }
            if (received == 0)
            {
                ShutdownSend(to);
                return (0, new PumpResult(total, PumpEnd.ReadFin, SocketError.Success));
            }
            var (sent, end) = await SendAsync(to, buffer.AsMemory(0, received), pause, total).ConfigureAwait(false);
            if (end is { } stopped)
            {
                return (sent, stopped.End == PumpEnd.Paused ? stopped with { Held = buffer.AsSpan(sent, received - sent).ToArray() } : stopped);
            }
            return (received, null);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<PumpResult> CopyPumpAsync(Socket from, Socket to, SocksSession session, bool fromClient, long total, RelayPause? pause)
    {
        var token = pause?.Token ?? CancellationToken.None;
        byte[]? buffer = null;
        try
        {
            while (true)
            {
                int received;
                try
                {
                    await from.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, token).ConfigureAwait(false);
                    buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                    received = await from.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return new PumpResult(total, PumpEnd.Paused, SocketError.Success, []);
                }
                catch (SocketException e)
                {
                    return new PumpResult(total, e.SocketErrorCode == SocketError.OperationAborted ? PumpEnd.Aborted : PumpEnd.ReadError, e.SocketErrorCode);
                }
                if (received == 0)
                {
                    ShutdownSend(to);
                    return new PumpResult(total, PumpEnd.ReadFin, SocketError.Success);
                }
                var (sent, end) = await SendAsync(to, buffer.AsMemory(0, received), pause, total).ConfigureAwait(false);
                if (end is { } stopped)
                {
                    session.Relayed(fromClient, sent);
                    return stopped.End == PumpEnd.Paused ? stopped with { Held = buffer.AsSpan(sent, received - sent).ToArray() } : stopped;
                }
                ArrayPool<byte>.Shared.Return(buffer);
                buffer = null;
                total += received;
                session.Relayed(fromClient, received);
            }
        }
        catch (ObjectDisposedException)
        {
            return new PumpResult(total, PumpEnd.Aborted, SocketError.OperationAborted);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>
    /// Sends <paramref name="data"/> whole, or stops when <paramref name="pause"/> is requested with the
    /// count sent so far: the kernel takes what fits without blocking, and under back-pressure one byte
    /// waits for room (SendAsync, cancellable: one byte is sent or not, so the count stays exact).
    /// Returns the bytes sent and, when it stopped early, how (the result's Bytes include the sent ones).
    /// </summary>
    private static async ValueTask<(int Sent, PumpResult? End)> SendAsync(Socket to, ReadOnlyMemory<byte> data, RelayPause? pause, long total)
    {
        var token = pause?.Token ?? CancellationToken.None;
        int sent = 0;
        try
        {
            while (sent < data.Length)
            {
                var n = Splice.Send(to.SafeHandle, data.Span[sent..]);
                if (n > 0)
                {
                    sent += (int)n;
                    continue;
                }
                if (n != -Splice.EAGAIN)
                {
                    return (sent, new PumpResult(total + sent, PumpEnd.WriteError, n == 0 ? SocketError.Shutdown : ToSocketError((int)-n)));
                }
                try
                {
                    sent += await to.SendAsync(data.Slice(sent, 1), SocketFlags.None, token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return (sent, new PumpResult(total + sent, PumpEnd.Paused, SocketError.Success));
                }
                catch (SocketException e)
                {
                    return (sent, new PumpResult(total + sent, e.SocketErrorCode == SocketError.OperationAborted ? PumpEnd.Aborted : PumpEnd.WriteError, e.SocketErrorCode));
                }
            }
            return (sent, null);
        }
        catch (ObjectDisposedException)
        {
            return (sent, new PumpResult(total + sent, PumpEnd.Aborted, SocketError.OperationAborted));
        }
    }

    /// <summary>The bytes of a paused splice direction: <paramref name="first"/>, taken out of the pipe already, then the pipe's <paramref name="rest"/>.</summary>
    private static byte[] DrainPipe(SafePipeHandle pipe, byte first, int rest)
    {
        var held = new byte[1 + rest];
        held[0] = first;
        int offset = 1;
        while (offset < held.Length)
        {
            var n = Splice.Read(pipe, held.AsSpan(offset));
            if (n <= 0)
            {
                // The pipe had these bytes a moment ago and nothing else reads it.
                throw new InvalidOperationException($"pipe read returned {n} with {held.Length - offset} bytes left");
            }
            offset += (int)n;
        }
        return held;
    }

    /// <summary>Passes a FIN on (half-close, Kestrel ConnectionWriteFin).</summary>
    private static void ShutdownSend(Socket to)
    {
        try
        {
            to.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            // The other side is already gone; its own direction reports it.
        }
    }

    /// <summary>The errno of a failed splice as the SocketError the copy path would have reported.</summary>
    private static SocketError ToSocketError(int errno) => errno switch
    {
        Splice.ECONNRESET => SocketError.ConnectionReset,
        Splice.ECONNABORTED => SocketError.ConnectionAborted,
        Splice.EPIPE or Splice.ENOTCONN => SocketError.Shutdown,
        Splice.ETIMEDOUT => SocketError.TimedOut,
        Splice.EHOSTUNREACH => SocketError.HostUnreachable,
        Splice.ENETUNREACH => SocketError.NetworkUnreachable,
        Splice.EBADF => SocketError.OperationAborted,
        _ => SocketError.SocketError,
    };
}
