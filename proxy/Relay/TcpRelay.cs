using System.Buffers;
using System.Net.Sockets;
using L2Balance.Proxy.Server;

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

/// <summary>
/// Copies bytes both ways between two connected TCP sockets without a thread per connection.
/// Each direction waits with a zero-byte receive, so an idle session holds no buffer
/// (Kestrel SocketConnection); a FIN from one side is passed on as a half-close and the other
/// direction keeps running until it ends too.
/// </summary>
internal static class TcpRelay
{
    /// <summary>64 KiB per active direction: large enough for full-rate bulk transfers on loopback-class links.</summary>
    private const int BufferSize = 64 * 1024;

    public static async Task<RelayResult> RunAsync(Socket client, Socket target, SocksSession session)
    {
        var up = PumpAsync(client, target, session);
        var down = PumpAsync(target, client, session);
        var first = await Task.WhenAny(up, down).ConfigureAwait(false);
        if (first.Result.End != PumpEnd.ReadFin)
        {
            // One side failed: nothing more can be delivered, end the other direction too.
            client.Dispose();
            target.Dispose();
        }
        return new RelayResult(await up.ConfigureAwait(false), await down.ConfigureAwait(false));
    }

    private static async Task<PumpResult> PumpAsync(Socket from, Socket to, SocksSession session)
    {
        long total = 0;
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
                    try
                    {
                        to.Shutdown(SocketShutdown.Send);
                    }
                    catch (SocketException)
                    {
                        // The other side is already gone; its own direction reports it.
                    }
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
                session.Touch();
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
}
