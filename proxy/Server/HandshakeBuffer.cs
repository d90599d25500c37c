using System.Buffers;
using System.Net.Sockets;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Server;

/// <summary>A codec's TryParse, as a delegate the handshake reader can call for any message type.</summary>
public delegate ParseStatus MessageParser<T>(in ReadOnlySequence<byte> input, out T message, out int consumed, out SocksRejection reason);

/// <summary>
/// The client's bytes during negotiation: feeds a pooled buffer to the pure codecs
/// (docs/conventions.md §5) and keeps what follows the last message (data a client sent ahead of the reply),
/// which the relay then forwards first. The same pooled array has room for one reply: the
/// session's codecs write their replies into it through <see cref="IBufferWriter{T}"/>, so a
/// handshake allocates no buffer per reply.
/// </summary>
internal sealed class HandshakeBuffer : IDisposable, IBufferWriter<byte>
{
    /// <summary>Longest handshake message: a SOCKS4a request with a 255-byte user id and name (about 520 bytes).</summary>
    private const int DefaultCapacity = 1024;

    /// <summary>Longest reply: a SOCKS5 reply naming a host, 4 + 1 + 255 + 2 bytes.</summary>
    private const int ReplyCapacity = 512;

    private int _capacity = DefaultCapacity;
    private byte[]? _buffer = ArrayPool<byte>.Shared.Rent(DefaultCapacity + ReplyCapacity);
    private int _start;
    private int _end;
    private byte[]? _replyFallback;
    private int _replyLength;

    /// <summary>Bytes received but not consumed by any message.</summary>
    public ReadOnlyMemory<byte> Remaining => _buffer.AsMemory(_start, _end - _start);

    /// <summary>Peeks at the first unconsumed byte, receiving if needed; -1 when the client closed.</summary>
    public async ValueTask<int> PeekByteAsync(Socket socket)
    {
        if (_end == _start && !await ReceiveAsync(socket).ConfigureAwait(false))
        {
            return -1;
        }
        return _buffer![_start];
    }

    /// <summary>
    /// Parses one message, receiving more bytes while the codec says NeedMoreData.
    /// Throws <see cref="EndOfStreamException"/> when the client closes first.
    /// </summary>
    public async ValueTask<(ParseStatus Status, T Message, SocksRejection Reason)> ReadAsync<T>(Socket socket, MessageParser<T> parser)
    {
        while (true)
        {
            if (_end > _start)
            {
                var input = new ReadOnlySequence<byte>(_buffer!, _start, _end - _start);
                var status = parser(in input, out var message, out var consumed, out var reason);
                if (status == ParseStatus.Ok)
                {
                    _start += consumed;
                    return (status, message, reason);
                }
                if (status == ParseStatus.Invalid)
                {
                    return (status, message, reason);
                }
            }
            if (!await ReceiveAsync(socket).ConfigureAwait(false))
            {
                throw new EndOfStreamException();
            }
        }
    }

    private async ValueTask<bool> ReceiveAsync(Socket socket)
    {
        if (_end == _capacity)
        {
            if (_start == 0)
            {
                throw new InvalidDataException("handshake message longer than any SOCKS message");
            }
            Buffer.BlockCopy(_buffer!, _start, _buffer!, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        var n = await socket.ReceiveAsync(_buffer!.AsMemory(_end, _capacity - _end), SocketFlags.None).ConfigureAwait(false);
        _end += n;
        return n > 0;
    }

    /// <summary>
    /// Makes room for messages up to <paramref name="capacity"/> bytes (RFC 1961 tokens): only GSS-API sessions
    /// pay for the larger buffer. Called between messages, with no reply pending.
    /// </summary>
    public void Grow(int capacity)
    {
        if (_buffer is null || capacity <= _capacity)
        {
            return;
        }
        var larger = ArrayPool<byte>.Shared.Rent(capacity + ReplyCapacity);
        Buffer.BlockCopy(_buffer, _start, larger, 0, _end - _start);
        _end -= _start;
        _start = 0;
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = larger;
        _capacity = capacity;
    }

    /// <summary>The reply written so far; the next write starts a new reply.</summary>
    public ReadOnlyMemory<byte> TakeReply()
    {
        var reply = ReplyArea()[.._replyLength];
        _replyLength = 0;
        return reply;
    }

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, ReplyCapacity - _replyLength);
        _replyLength += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        if (sizeHint > ReplyCapacity - _replyLength)
        {
            throw new InvalidOperationException($"a SOCKS reply needs at most {ReplyCapacity} bytes, not {_replyLength + sizeHint}");
        }
        return ReplyArea()[_replyLength..];
    }

    public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    /// <summary>The reply region behind the receive region; after <see cref="Dispose"/> (a late failure reply) an array of its own.</summary>
    private Memory<byte> ReplyArea() => _buffer is { } buffer
        ? buffer.AsMemory(_capacity, ReplyCapacity)
        : (_replyFallback ??= new byte[ReplyCapacity]);

    public void Dispose()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
    }
}
