using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using L2Balance.Proxy.Auth;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Server;

namespace L2Balance.Proxy.Relay;

/// <summary>
/// The relay of a GSS-API session at level integrity, confidentiality or per-message (RFC 1961 section 5): every
/// chunk from the target is wrapped into one encapsulation message, every message from the client unwrapped. The
/// bytes pass through user space (gss_wrap needs them), so sessions at level clear keep <see cref="TcpRelay"/>.
/// </summary>
internal static class GssapiRelay
{
    /// <summary>Plaintext per wrapped message: the krb5 wrap overhead (under 100 bytes) keeps the token far below LEN's 65535.</summary>
    private const int ChunkLength = 16 * 1024;

    public static async Task<RelayResult> RunAsync(Socket client, Socket target, SocksSession session, GssapiContext context, GssapiProtection level, ReadOnlyMemory<byte> early)
    {
        var up = UnwrapPumpAsync(client, target, session, context, level, early.ToArray());
        var down = WrapPumpAsync(target, client, session, context, level);
        var first = await Task.WhenAny(up, down).ConfigureAwait(false);
        if (first.Result.End != PumpEnd.ReadFin)
        {
            client.Dispose();
            target.Dispose();
        }
        return new RelayResult(await up.ConfigureAwait(false), await down.ConfigureAwait(false));
    }

    /// <summary>Client to target: reads whole encapsulation messages, sends their unwrapped data.</summary>
    private static Task<PumpResult> UnwrapPumpAsync(Socket client, Socket target, SocksSession session, GssapiContext context, GssapiProtection level, byte[] early) =>
        GuardedAsync(GssapiCodec.HeaderLength + GssapiCodec.MaxTokenLength, async (buffer, counted) =>
        {
            int filled = early.Length;
            early.CopyTo(buffer, 0);
            while (true)
            {
                bool ok2;
                (ok2, filled) = await FillAsync(client, buffer, filled, 2).ConfigureAwait(false);
                if (!ok2)
                {
                    // A FIN between messages is the client's half-close; inside one, a truncated message.
                    return filled == 0 ? Fin(target, counted.Total) : Truncated(session, counted.Total);
                }
                if (buffer[0] != GssapiCodec.Version || buffer[1] != (byte)GssapiMessageType.Encapsulated)
                {
                    // The abort message, or anything else where only encapsulated data may come.
                    session.GssapiTokenFailed(new GssapiException(buffer[1] == (byte)GssapiMessageType.Abort ? GssapiFailure.Protocol : GssapiFailure.Defective,
                        $"relay: message {buffer[0]:x2} {buffer[1]:x2} where only encapsulated data (01 03) may come"));
                    return new PumpResult(counted.Total, PumpEnd.ReadError, SocketError.ProtocolNotSupported);
                }
                (ok2, filled) = await FillAsync(client, buffer, filled, GssapiCodec.HeaderLength).ConfigureAwait(false);
                if (!ok2)
                {
                    return Truncated(session, counted.Total);
                }
                int length = BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(2));
                (ok2, filled) = await FillAsync(client, buffer, filled, GssapiCodec.HeaderLength + length).ConfigureAwait(false);
                if (!ok2)
                {
                    return Truncated(session, counted.Total);
                }
                byte[] data;
                try
                {
                    data = context.Unwrap(buffer.AsSpan(GssapiCodec.HeaderLength, length), out bool confidential);
                    if (level == GssapiProtection.Confidentiality && !confidential)
                    {
                        throw new GssapiException(GssapiFailure.ProtectionLevel, "relay: a message without confidentiality at level confidentiality");
                    }
                }
                catch (GssapiException e)
                {
                    session.GssapiTokenFailed(e);
                    return new PumpResult(counted.Total, PumpEnd.ReadError, SocketError.ProtocolNotSupported);
                }
                int consumed = GssapiCodec.HeaderLength + length;
                Buffer.BlockCopy(buffer, consumed, buffer, 0, filled - consumed);
                filled -= consumed;
                if (data.Length > 0)
                {
                    try
                    {
                        await target.SendAsync(data, SocketFlags.None).ConfigureAwait(false);
                    }
                    catch (SocketException e)
                    {
                        return new PumpResult(counted.Total, PumpEnd.WriteError, e.SocketErrorCode);
                    }
                    counted.Total += data.Length;
                    session.Relayed(fromClient: true, data.Length);
                }
            }
        });

    /// <summary>Target to client: each chunk read becomes one encapsulation message.</summary>
    private static Task<PumpResult> WrapPumpAsync(Socket target, Socket client, SocksSession session, GssapiContext context, GssapiProtection level) =>
        GuardedAsync(ChunkLength, async (buffer, counted) =>
        {
            while (true)
            {
                int n = await target.ReceiveAsync(buffer.AsMemory(0, ChunkLength), SocketFlags.None).ConfigureAwait(false);
                if (n == 0)
                {
                    ShutdownSend(client);
                    return new PumpResult(counted.Total, PumpEnd.ReadFin, SocketError.Success);
                }
                byte[] message;
                try
                {
                    message = context.Wrap(buffer.AsSpan(0, n), level != GssapiProtection.Integrity, GssapiCodec.HeaderLength);
                }
                catch (GssapiException e)
                {
                    session.GssapiTokenFailed(e);
                    return new PumpResult(counted.Total, PumpEnd.ReadError, SocketError.ProtocolNotSupported);
                }
                GssapiCodec.WriteHeader(message, GssapiMessageType.Encapsulated, message.Length - GssapiCodec.HeaderLength);
                try
                {
                    await client.SendAsync(message, SocketFlags.None).ConfigureAwait(false);
                }
                catch (SocketException e)
                {
                    return new PumpResult(counted.Total, PumpEnd.WriteError, e.SocketErrorCode);
                }
                counted.Total += n;
                session.Relayed(fromClient: false, n);
            }
        });

    /// <summary>Bytes a pump moved so far, for its result when an exception ends it.</summary>
    private sealed class Counted
    {
        public long Total;
    }

    /// <summary>Runs a pump with a pooled buffer; a socket error or the session's close ends it with what it moved.</summary>
    private static async Task<PumpResult> GuardedAsync(int bufferLength, Func<byte[], Counted, Task<PumpResult>> pump)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(bufferLength);
        var counted = new Counted();
        try
        {
            return await pump(buffer, counted).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            return new PumpResult(counted.Total, PumpEnd.ReadError, e.SocketErrorCode);
        }
        catch (ObjectDisposedException)
        {
            return new PumpResult(counted.Total, PumpEnd.Aborted, SocketError.OperationAborted);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Receives until <paramref name="needed"/> bytes are buffered; false when the client closed first.</summary>
    private static async ValueTask<(bool Ok, int Filled)> FillAsync(Socket from, byte[] buffer, int filled, int needed)
    {
        while (filled < needed)
        {
            int n = await from.ReceiveAsync(buffer.AsMemory(filled, buffer.Length - filled), SocketFlags.None).ConfigureAwait(false);
            if (n == 0)
            {
                return (false, filled);
            }
            filled += n;
        }
        return (true, filled);
    }

    private static PumpResult Fin(Socket target, long total)
    {
        ShutdownSend(target);
        return new PumpResult(total, PumpEnd.ReadFin, SocketError.Success);
    }

    private static PumpResult Truncated(SocksSession session, long total)
    {
        session.GssapiTokenFailed(new GssapiException(GssapiFailure.Defective, "relay: the client closed inside an encapsulation message"));
        return new PumpResult(total, PumpEnd.ReadError, SocketError.ConnectionAborted);
    }

    private static void ShutdownSend(Socket to)
    {
        try
        {
            to.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
        }
    }
}
