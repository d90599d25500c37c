using System.Buffers;
using System.Net.Sockets;
using System.Security.Cryptography;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Migration;

/// <summary>
/// The migration channel over one TCP connection between two nodes' own addresses: both sides send a
/// random nonce, then records of <see cref="MigrationRecords"/> carry one session state each.
/// </summary>
public sealed class MigrationChannel : IDisposable
{
    private readonly Socket _socket;
    private readonly MigrationRecords _records;
    private readonly ArrayBufferWriter<byte> _output = new();

    // States (one task per session) and Go (the reader) are sent concurrently: seal and send one record at a time.
    private readonly SemaphoreSlim _sending = new(1, 1);
    private byte[] _input = new byte[64 * 1024];
    private int _buffered;

    private MigrationChannel(Socket socket, MigrationRecords records)
    {
        _socket = socket;
        _records = records;
    }

    /// <summary>Opens the channel on a connected socket; <paramref name="initiator"/> is the side that connected.</summary>
    public static async Task<MigrationChannel> OpenAsync(Socket connected, byte[] channelKey, bool initiator, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connected);
        var own = RandomNumberGenerator.GetBytes(MigrationRecords.NonceLength);
        var peer = new byte[MigrationRecords.NonceLength];
        await connected.SendAsync(own, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        await ReceiveExactlyAsync(connected, peer, cancellationToken).ConfigureAwait(false);
        var records = initiator ? new MigrationRecords(channelKey, own, peer, true) : new MigrationRecords(channelKey, peer, own, false);
        return new MigrationChannel(connected, records);
    }

    /// <summary>Sends one record.</summary>
    public async Task SendAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        await _sending.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _output.ResetWrittenCount();
            _records.Seal(payload.Span, _output);
            var record = _output.WrittenMemory;
            while (!record.IsEmpty)
            {
                int sent = await _socket.SendAsync(record, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                record = record[sent..];
            }
        }
        finally
        {
            _sending.Release();
        }
    }

    /// <summary>Receives one record; throws <see cref="MigrationException"/> with the reason for a refused one or at EOF.</summary>
    public async Task<byte[]> ReceiveAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var status = _records.TryOpen(_input.AsSpan(0, _buffered), out var plaintext, out int consumed, out var reason);
            if (status == ParseStatus.Ok)
            {
                _input.AsSpan(consumed, _buffered - consumed).CopyTo(_input);
                _buffered -= consumed;
                return plaintext;
            }

            if (status == ParseStatus.Invalid)
            {
                throw new MigrationException($"migration channel: record refused: {reason}");
            }

            int needed = MigrationRecords.RecordLength(_input.AsSpan(0, _buffered));
            if (needed > _input.Length)
            {
                Array.Resize(ref _input, needed);
            }

            int n = await _socket.ReceiveAsync(_input.AsMemory(_buffered), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new MigrationException("migration channel: closed by the peer mid-record");
            }

            _buffered += n;
        }
    }

    public void Dispose()
    {
        _records.Dispose();
        _socket.Dispose();
        _sending.Dispose();
    }

    private static async Task ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new MigrationException("migration channel: closed by the peer during the handshake");
            }

            buffer = buffer[n..];
        }
    }
}
