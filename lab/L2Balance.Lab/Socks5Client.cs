using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace L2Balance.Lab;

/// <summary>
/// The one SOCKS5 (RFC 1928, no authentication) client of the lab, the lab tests and the benches,
/// over a socket the caller opened inside a namespace. <see cref="HandshakeAsync"/> is the whole
/// well-formed exchange in one buffer, as the bench's load generator runs it per connection; the
/// step methods let a test stop or misbehave between steps. A malformed reply throws
/// <see cref="InvalidDataException"/> and an early EOF <see cref="EndOfStreamException"/> (both
/// <see cref="IOException"/>s); the reply code is the caller's to judge.
/// </summary>
public static class Socks5Client
{
    public const byte Connect = 1;
    public const byte Bind = 2;
    public const byte UdpAssociate = 3;

    /// <summary>Bytes of the longest request or IP reply: VER CMD RSV ATYP, 16 address bytes, port.</summary>
    public const int MaxMessageBytes = 4 + 16 + 2;

    /// <summary>Bytes of the RFC 1928 section 7 UDP header for an IPv4 destination.</summary>
    public const int UdpHeaderBytes = 10;

    /// <summary>The UDP request header for an IPv6 destination: RSV, FRAG, ATYP 4, 16 address bytes, port.</summary>
    public const int UdpHeaderBytes6 = 22;

    private static readonly byte[] NoAuthGreeting = [5, 1, 0];

    /// <summary>
    /// Greeting, method selection, request, reply: one buffer and two round trips, nothing
    /// allocated beyond the bound address returned.
    /// </summary>
    public static async Task<(byte Code, IPEndPoint Bound)> HandshakeAsync(Socket socket, byte command, IPEndPoint destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var buffer = new byte[MaxMessageBytes];
        await socket.SendAsync(NoAuthGreeting, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        await ReadExactlyAsync(socket, buffer.AsMemory(0, 2), cancellationToken).ConfigureAwait(false);
        CheckMethodSelection(buffer);
        var length = WriteRequest(buffer, command, destination);
        await socket.SendAsync(buffer.AsMemory(0, length), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        return await ReadReplyIntoAsync(socket, buffer, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Greeting with method 0 (no authentication); throws unless the server picks it.</summary>
    public static async Task NegotiateNoAuthAsync(Socket socket, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(socket);
        await socket.SendAsync(NoAuthGreeting, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        CheckMethodSelection(await ReadExactlyAsync(socket, 2, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Sends a request (CONNECT, BIND, UDP ASSOCIATE) for an IPv4 or IPv6 destination.</summary>
    public static async Task SendRequestAsync(Socket socket, byte command, IPEndPoint destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var request = new byte[MaxMessageBytes];
        var length = WriteRequest(request, command, destination);
        await socket.SendAsync(request.AsMemory(0, length), SocketFlags.None, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads one reply: its code and bound address (ATYP 1 or 4; a domain reads as 0.0.0.0).</summary>
    public static async Task<(byte Code, IPEndPoint Bound)> ReadReplyAsync(Socket socket, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(socket);
        return await ReadReplyIntoAsync(socket, new byte[MaxMessageBytes], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes VER CMD RSV ATYP DST.ADDR DST.PORT into <paramref name="buffer"/>; returns its length.</summary>
    public static int WriteRequest(Span<byte> buffer, byte command, IPEndPoint destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        buffer[0] = 5;
        buffer[1] = command;
        buffer[2] = 0;
        var v4 = destination.Address.AddressFamily == AddressFamily.InterNetwork;
        buffer[3] = (byte)(v4 ? 1 : 4);
        var addressBytes = v4 ? 4 : 16;
        destination.Address.TryWriteBytes(buffer[4..], out _);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[(4 + addressBytes)..], (ushort)destination.Port);
        return 4 + addressBytes + 2;
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes; EOF before that throws <see cref="EndOfStreamException"/>.</summary>
    public static async Task<byte[]> ReadExactlyAsync(Socket socket, int count, CancellationToken cancellationToken = default)
    {
        var buffer = new byte[count];
        await ReadExactlyAsync(socket, buffer, cancellationToken).ConfigureAwait(false);
        return buffer;
    }

    /// <summary>Fills <paramref name="buffer"/>; EOF before that throws <see cref="EndOfStreamException"/>.</summary>
    public static async Task ReadExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var wanted = buffer.Length;
        while (buffer.Length > 0)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new EndOfStreamException($"EOF after {wanted - buffer.Length} of {wanted} bytes");
            }

            buffer = buffer[n..];
        }
    }

    /// <summary>Reads until the peer's FIN; everything received.</summary>
    public static async Task<byte[]> ReadToEndAsync(Socket socket, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(socket);
        using var received = new MemoryStream();
        var buffer = new byte[65536];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false)) > 0)
        {
            received.Write(buffer, 0, n);
        }

        return received.ToArray();
    }

    /// <summary>
    /// Writes the RFC 1928 section 7 UDP request header, RSV(2) FRAG(1)=0 ATYP(1)=1 DST.ADDR(4) DST.PORT(2)
    /// (IPv6: ATYP 4, 16 address bytes), into <paramref name="datagram"/>; the payload follows it
    /// (at <see cref="UdpHeaderLength"/>).
    /// </summary>
    public static void WriteUdpHeader(Span<byte> datagram, IPEndPoint destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var v6 = destination.AddressFamily == AddressFamily.InterNetworkV6;
        datagram[..4].Clear();
        datagram[3] = v6 ? (byte)4 : (byte)1;
        var end = v6 ? UdpHeaderBytes6 - 2 : UdpHeaderBytes - 2;
        if (!destination.Address.TryWriteBytes(datagram[4..end], out var written) || written != end - 4)
        {
            throw new ArgumentException($"{destination}: not an IPv4 or IPv6 address, or no room for its header", nameof(destination));
        }
        BinaryPrimitives.WriteUInt16BigEndian(datagram[end..], (ushort)destination.Port);
    }

    /// <summary>Length of the UDP request header for <paramref name="destination"/>: 10 bytes for IPv4, 22 for IPv6.</summary>
    public static int UdpHeaderLength(IPEndPoint destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return destination.AddressFamily == AddressFamily.InterNetworkV6 ? UdpHeaderBytes6 : UdpHeaderBytes;
    }

    /// <summary>A new datagram: the UDP header for <paramref name="destination"/> (IPv4 or IPv6), then <paramref name="payload"/>.</summary>
    public static byte[] WrapUdp(IPEndPoint destination, ReadOnlySpan<byte> payload)
    {
        var header = UdpHeaderLength(destination);
        var datagram = new byte[header + payload.Length];
        WriteUdpHeader(datagram, destination);
        payload.CopyTo(datagram.AsSpan(header));
        return datagram;
    }

    /// <summary>The payload of a relayed IPv4 or IPv6 UDP datagram, or an empty span if the header is not one.</summary>
    public static ReadOnlySpan<byte> UnwrapUdp(ReadOnlySpan<byte> datagram) =>
        datagram.Length < 4 || datagram[2] != 0 ? []
        : datagram[3] == 1 && datagram.Length >= UdpHeaderBytes ? datagram[UdpHeaderBytes..]
        : datagram[3] == 4 && datagram.Length >= UdpHeaderBytes6 ? datagram[UdpHeaderBytes6..]
        : [];

    private static void CheckMethodSelection(ReadOnlySpan<byte> choice)
    {
        if (choice[0] != 5 || choice[1] != 0)
        {
            throw new InvalidDataException($"method selection {Convert.ToHexString(choice[..2])}");
        }
    }

    /// <summary>
    /// Reads a reply into <paramref name="buffer"/> (at least <see cref="MaxMessageBytes"/> long);
    /// pooled, so the load generator's handshake allocates no state for this step.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<(byte Code, IPEndPoint Bound)> ReadReplyIntoAsync(Socket socket, byte[] buffer, CancellationToken cancellationToken)
    {
        await ReadExactlyAsync(socket, buffer.AsMemory(0, 4), cancellationToken).ConfigureAwait(false);
        var code = buffer[1];
        var addressBytes = buffer[3] switch
        {
            1 => 4,
            4 => 16,
            3 => -1,
            _ => throw new InvalidDataException($"reply ATYP {buffer[3]}"),
        };
        if (addressBytes < 0)
        {
            // A domain name: its length byte, then the name (dropped) and the port.
            await ReadExactlyAsync(socket, buffer.AsMemory(0, 1), cancellationToken).ConfigureAwait(false);
            var nameAndPort = await ReadExactlyAsync(socket, buffer[0] + 2, cancellationToken).ConfigureAwait(false);
            return (code, new IPEndPoint(IPAddress.Any, BinaryPrimitives.ReadUInt16BigEndian(nameAndPort.AsSpan(buffer[0]))));
        }

        await ReadExactlyAsync(socket, buffer.AsMemory(0, addressBytes + 2), cancellationToken).ConfigureAwait(false);
        var address = new IPAddress(buffer.AsSpan(0, addressBytes));
        return (code, new IPEndPoint(address, BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(addressBytes))));
    }
}
