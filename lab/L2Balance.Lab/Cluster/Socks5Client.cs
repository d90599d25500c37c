using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Lab.Cluster;

/// <summary>
/// A minimal RFC 1928 client over a socket the lab opened inside a namespace (copied from the lab
/// tests' RawSocks5 so the traffic generator and the tests share it). Every call takes a
/// cancellation token: callers bound each step with a timeout.
/// </summary>
public static class Socks5Client
{
    public const byte Connect = 1;
    public const byte Bind = 2;
    public const byte UdpAssociate = 3;

    /// <summary>Greeting with method 0 (no authentication); throws unless the server picks it.</summary>
    public static async Task NegotiateNoAuthAsync(Socket socket, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(socket);
        await socket.SendAsync(new byte[] { 5, 1, 0 }, cancellationToken).ConfigureAwait(false);
        var choice = await ReadExactlyAsync(socket, 2, cancellationToken).ConfigureAwait(false);
        if (choice[0] != 5 || choice[1] != 0)
        {
            throw new InvalidDataException($"method selection {Convert.ToHexString(choice)}");
        }
    }

    /// <summary>Sends a request (CONNECT, BIND, UDP ASSOCIATE) for an IPv4 or IPv6 destination.</summary>
    public static async Task SendRequestAsync(Socket socket, byte command, IPEndPoint destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(destination);
        var address = destination.Address.GetAddressBytes();
        var request = new byte[4 + address.Length + 2];
        request[0] = 5;
        request[1] = command;
        request[3] = (byte)(address.Length == 4 ? 1 : 4);
        address.CopyTo(request, 4);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(4 + address.Length), (ushort)destination.Port);
        await socket.SendAsync(request, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads one reply: its code and bound address (ATYP 1 or 4; a domain reads as 0.0.0.0).</summary>
    public static async Task<(byte Code, IPEndPoint Bound)> ReadReplyAsync(Socket socket, CancellationToken cancellationToken)
    {
        var head = await ReadExactlyAsync(socket, 4, cancellationToken).ConfigureAwait(false);
        var length = head[3] switch
        {
            1 => 4,
            4 => 16,
            3 => (await ReadExactlyAsync(socket, 1, cancellationToken).ConfigureAwait(false))[0],
            _ => throw new InvalidDataException($"reply ATYP {head[3]}"),
        };
        var rest = await ReadExactlyAsync(socket, length + 2, cancellationToken).ConfigureAwait(false);
        var address = head[3] == 3 ? IPAddress.Any : new IPAddress(rest.AsSpan(0, length));
        return (head[1], new IPEndPoint(address, BinaryPrimitives.ReadUInt16BigEndian(rest.AsSpan(length))));
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes; EOF before that throws <see cref="EndOfStreamException"/>.</summary>
    public static async Task<byte[]> ReadExactlyAsync(Socket socket, int count, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var buffer = new byte[count];
        var read = 0;
        while (read < count)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new EndOfStreamException($"EOF after {read} of {count} bytes");
            }

            read += n;
        }

        return buffer;
    }

    /// <summary>
    /// The RFC 1928 §7 UDP request header for an IPv4 destination: RSV(2) FRAG(1)=0 ATYP(1)=1
    /// DST.ADDR(4) DST.PORT(2), followed by <paramref name="payload"/>.
    /// </summary>
    public static byte[] WrapUdp(IPEndPoint destination, ReadOnlySpan<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var datagram = new byte[10 + payload.Length];
        datagram[3] = 1;
        destination.Address.GetAddressBytes().CopyTo(datagram, 4);
        BinaryPrimitives.WriteUInt16BigEndian(datagram.AsSpan(8), (ushort)destination.Port);
        payload.CopyTo(datagram.AsSpan(10));
        return datagram;
    }

    /// <summary>The payload of a relayed IPv4 UDP datagram, or an empty span if the header is not one.</summary>
    public static ReadOnlySpan<byte> UnwrapUdp(ReadOnlySpan<byte> datagram) =>
        datagram.Length >= 10 && datagram[2] == 0 && datagram[3] == 1 ? datagram[10..] : [];
}
