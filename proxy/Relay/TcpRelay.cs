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
}

internal readonly record struct PumpResult(long Bytes, PumpEnd End, SocketError Error);

/// <summary>The outcome of a whole relay: bytes each way and how each direction ended (YARP StreamCopyResult).</summary>
internal readonly record struct RelayResult(PumpResult Up, PumpResult Down)
{
    public long FromClient => Up.Bytes;

    public long ToClient => Down.Bytes;

    public bool Failed => Up.End is PumpEnd.ReadError or PumpEnd.WriteError || Down.End is PumpEnd.ReadError or PumpEnd.WriteError;

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

    public static async Task<RelayResult> RunAsync(Socket client, Socket target, SocksSession session)
    {
        var up = PumpAsync(client, target, session, fromClient: true);
        var down = PumpAsync(target, client, session, fromClient: false);
        var first = await Task.WhenAny(up, down).ConfigureAwait(false);
        if (first.Result.End != PumpEnd.ReadFin)
        {
            // One side failed: nothing more can be delivered, end the other direction too.
            client.Dispose();
            target.Dispose();
        }
        return new RelayResult(await up.ConfigureAwait(false), await down.ConfigureAwait(false));
    }

    private static Task<PumpResult> PumpAsync(Socket from, Socket to, SocksSession session, bool fromClient) =>
        Mode == RelayMode.Splice && Volatile.Read(ref s_spliceUnsupported) == 0
            ? SplicePumpAsync(from, to, session, fromClient)
            : CopyPumpAsync(from, to, session, fromClient, 0);

    private static async Task<PumpResult> SplicePumpAsync(Socket from, Socket to, SocksSession session, bool fromClient)
    {
        long total = 0;
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
                    await from.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
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
                    var copied = await CopyOnceAsync(from, to, total).ConfigureAwait(false);
                    if (copied.End is { } end)
                    {
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
                        return await CopyPumpAsync(from, to, session, fromClient, total).ConfigureAwait(false);
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
                            return await CopyPumpAsync(from, to, session, fromClient, total).ConfigureAwait(false);
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
                            await to.SendAsync(oneByte, SocketFlags.None).ConfigureAwait(false);
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
    private static async ValueTask<(int Bytes, PumpResult? End)> CopyOnceAsync(Socket from, Socket to, long total)
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
            try
            {
                await to.SendAsync(buffer.AsMemory(0, received), SocketFlags.None).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                return (0, new PumpResult(total, e.SocketErrorCode == SocketError.OperationAborted ? PumpEnd.Aborted : PumpEnd.WriteError, e.SocketErrorCode));
            }
            return (received, null);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<PumpResult> CopyPumpAsync(Socket from, Socket to, SocksSession session, bool fromClient, long total)
    {
        byte[]? buffer = null;
        try
        {
            while (true)
            {
                int received;
                try
                {
                    await from.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                    buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                    received = await from.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
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
                try
                {
                    await to.SendAsync(buffer.AsMemory(0, received), SocketFlags.None).ConfigureAwait(false);
                }
                catch (SocketException e)
                {
                    return new PumpResult(total, e.SocketErrorCode == SocketError.OperationAborted ? PumpEnd.Aborted : PumpEnd.WriteError, e.SocketErrorCode);
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
