using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Health;
using Xunit;

namespace L2Balance.L2Bal.Tests.Health;

/// <summary>
/// The listen check against the kernel of the test process: listening sockets only, on the
/// loopback address; nothing is sent anywhere.
/// </summary>
public sealed class ListenCheckTests
{
    [Fact]
    public void ListenCheck_ListenerOnTheAddress_IsSeenUntilClosed()
    {
        IPEndPoint endPoint;
        using (var listener = Listening(new IPEndPoint(IPAddress.Loopback, 0)))
        {
            endPoint = (IPEndPoint)listener.LocalEndPoint!;
            using var check = ListenCheck.Open(endPoint);
            Assert.True(check.Listens());
        }
        using var after = ListenCheck.Open(endPoint);
        Assert.False(after.Listens());
    }

    [Fact]
    public void ListenCheck_BoundButNotListening_IsNoListener()
    {
        using var bound = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        bound.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var check = ListenCheck.Open((IPEndPoint)bound.LocalEndPoint!);
        Assert.False(check.Listens());
    }

    [Fact]
    public void ListenCheck_DualStackWildcardListener_TakesTheIPv4Address()
    {
        using var listener = Listening(new IPEndPoint(IPAddress.IPv6Any, 0), dualMode: true);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using var check = ListenCheck.Open(new IPEndPoint(IPAddress.Loopback, port));
        Assert.True(check.Listens());
    }

    [Fact]
    public void ListenCheck_ListenerOnAnotherPort_DoesNotCount()
    {
        using var listener = Listening(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using var check = ListenCheck.Open(new IPEndPoint(IPAddress.Loopback, port == 65535 ? port - 1 : port + 1));
        Assert.False(check.Listens());
    }

    [Fact]
    public void ListenCheck_IPv4WildcardListener_DoesNotTakeAnIPv6Address()
    {
        using var listener = Listening(new IPEndPoint(IPAddress.Any, 0));
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using var v4 = ListenCheck.Open(new IPEndPoint(IPAddress.Loopback, port));
        using var v6 = ListenCheck.Open(new IPEndPoint(IPAddress.IPv6Loopback, port));
        Assert.True(v4.Listens());
        Assert.False(v6.Listens());
    }

    /// <summary>A TCP socket listening on <paramref name="at"/> (port 0: the kernel picks one).</summary>
    private static Socket Listening(IPEndPoint at, bool dualMode = false)
    {
        var listener = new Socket(at.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (dualMode)
        {
            listener.DualMode = true;
        }

        listener.Bind(at);
        listener.Listen();
        return listener;
    }
}
