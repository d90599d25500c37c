using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using L2Balance.Tests.Common;

namespace L2Balance.Lab.Tests;

/// <summary>A minimal RFC 1928 client over a socket the test opened inside the client namespace.</summary>
internal static class RawSocks5
{
    public const byte Connect = 1;
    public const byte Bind = 2;
    public const byte UdpAssociate = 3;

    /// <summary>Greeting with method 0 (no authentication); asserts the server picks it.</summary>
    public static async Task NegotiateNoAuthAsync(Socket socket)
    {
        await socket.SendAsync(new byte[] { 5, 1, 0 }).WithTimeout();
        var choice = await ReadExactlyAsync(socket, 2);
        if (choice[0] != 5 || choice[1] != 0)
        {
            throw new InvalidOperationException($"method selection {Convert.ToHexString(choice)}");
        }
    }

    /// <summary>Sends a request for an IPv4 or IPv6 destination.</summary>
    public static Task SendRequestAsync(Socket socket, byte command, IPEndPoint destination)
    {
        var address = destination.Address.GetAddressBytes();
        var request = new byte[4 + address.Length + 2];
        request[0] = 5;
        request[1] = command;
        request[3] = (byte)(address.Length == 4 ? 1 : 4);
        address.CopyTo(request, 4);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(4 + address.Length), (ushort)destination.Port);
        return socket.SendAsync(request).WithTimeout();
    }

    /// <summary>Reads one reply: its code and bound address (ATYP 1 or 4).</summary>
    public static async Task<(byte Code, IPEndPoint Bound)> ReadReplyAsync(Socket socket, TimeSpan? timeout = null)
    {
        var head = await ReadExactlyAsync(socket, 4, timeout);
        var length = head[3] switch
        {
            1 => 4,
            4 => 16,
            3 => (await ReadExactlyAsync(socket, 1, timeout))[0],
            _ => throw new InvalidOperationException($"reply ATYP {head[3]}"),
        };
        var rest = await ReadExactlyAsync(socket, length + 2, timeout);
        var address = head[3] == 3 ? IPAddress.Any : new IPAddress(rest.AsSpan(0, length));
        return (head[1], new IPEndPoint(address, BinaryPrimitives.ReadUInt16BigEndian(rest.AsSpan(length))));
    }

    public static async Task<byte[]> ReadExactlyAsync(Socket socket, int count, TimeSpan? timeout = null)
    {
        var buffer = new byte[count];
        var read = 0;
        while (read < count)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read)).AsTask().WithTimeout(timeout);
            if (n == 0)
            {
                throw new EndOfStreamException($"EOF after {read} of {count} bytes");
            }

            read += n;
        }

        return buffer;
    }

    /// <summary>Reads until the peer's FIN.</summary>
    public static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        using var ms = new MemoryStream();
        var buffer = new byte[65536];
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory()).AsTask().WithTimeout();
            if (n == 0)
            {
                return ms.ToArray();
            }

            ms.Write(buffer, 0, n);
        }
    }
}
