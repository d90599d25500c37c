using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Config;

namespace L2Balance.Proxy.Server;

/// <summary>
/// Binds the sockets the proxy opens for UDP relays and BIND inside the configured port range,
/// so that in a cluster each node keeps to its own slice (docs/design.md#port-slices).
/// </summary>
internal static class PortBinder
{
    public static void Bind(Socket socket, IPAddress address, PortRange? range)
    {
        if (range is not { } r)
        {
            socket.Bind(new IPEndPoint(address, 0));
            return;
        }
        // Start at a random port so concurrent binds do not all collide on the first free one.
        var start = Random.Shared.Next(r.Count);
        for (var i = 0; i < r.Count; i++)
        {
            var port = r.Low + (start + i) % r.Count;
            try
            {
                socket.Bind(new IPEndPoint(address, port));
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
            }
        }
        throw new SocketException((int)SocketError.AddressAlreadyInUse);
    }
}
