using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Server;
using Xunit;

namespace L2Balance.Proxy.Tests.Server;

/// <summary>
/// Ports inside the range on a shared address (docs/design.md#single-ip-mode): the kernel's
/// per-socket range (IP_LOCAL_PORT_RANGE) and the explicit-bind fallback, and what exhaustion looks like.
/// </summary>
public sealed class PortBinderTests
{
    [Fact]
    public void RangeValue_LowAndHigh_PackedLowInLowHalf()
    {
        var value = BitConverter.ToUInt32(PortBinder.RangeValue(new PortRange(40000, 40010)));

        Assert.Equal(40000u, value & 0xffff);
        Assert.Equal(40010u, value >> 16);
    }

    [Theory]
    [InlineData(SocketType.Dgram, ProtocolType.Udp)]
    [InlineData(SocketType.Stream, ProtocolType.Tcp)]
    public void Bind_WithRange_PortInsideRange(SocketType type, ProtocolType protocol)
    {
        var range = FreeRange(8);
        for (var i = 0; i < 4; i++)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, type, protocol);
            PortBinder.Bind(socket, IPAddress.Loopback, range);

            Assert.True(range.Contains(((IPEndPoint)socket.LocalEndPoint!).Port), $"{socket.LocalEndPoint} outside {range}");
        }
    }

    [Fact]
    public void Bind_RangeOutsideLocalRange_StillInsideRange()
    {
        // Above 61000 is outside Linux's default ip_local_port_range: the kernel would ignore its option there.
        var range = new PortRange(64000, 64999);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);

        PortBinder.Bind(socket, IPAddress.Loopback, range);

        Assert.True(range.Contains(((IPEndPoint)socket.LocalEndPoint!).Port), $"{socket.LocalEndPoint} outside {range}");
    }

    [Fact]
    public void BindExplicit_RangeFull_ThrowsAddressAlreadyInUse()
    {
        var range = FreeRange(2);
        using var first = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        using var second = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        using var third = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        PortBinder.BindExplicit(first, IPAddress.Loopback, range);
        PortBinder.BindExplicit(second, IPAddress.Loopback, range);

        var e = Assert.Throws<SocketException>(() => PortBinder.BindExplicit(third, IPAddress.Loopback, range));

        Assert.True(PortBinder.IsExhausted(e.SocketErrorCode));
        Assert.NotEqual(((IPEndPoint)first.LocalEndPoint!).Port, ((IPEndPoint)second.LocalEndPoint!).Port);
    }

    [Fact]
    public void BindForConnect_OnePortTwoConnectsToOneTarget_SecondIsExhausted()
    {
        using var listener = Listening();
        var range = FreeRange(1);
        using var first = ConnectFrom(range, listener.LocalEndPoint!);

        var e = Assert.Throws<SocketException>(() => ConnectFrom(range, listener.LocalEndPoint!).Dispose());

        Assert.Equal(range.Low, ((IPEndPoint)first.LocalEndPoint!).Port);
        Assert.True(PortBinder.IsExhausted(e.SocketErrorCode), e.SocketErrorCode.ToString());
    }

    [SkippableFact]
    public void BindForConnect_OnePortTwoTargets_KernelSharesThePort()
    {
        Skip.IfNot(KernelHasRange(), "the kernel has no IP_LOCAL_PORT_RANGE (Linux < 6.3): the fallback binds one port per socket");
        using var a = Listening();
        using var b = Listening();
        var range = FreeRange(1);

        using var toA = ConnectFrom(range, a.LocalEndPoint!);
        using var toB = ConnectFrom(range, b.LocalEndPoint!);

        Assert.Equal(((IPEndPoint)toA.LocalEndPoint!).Port, ((IPEndPoint)toB.LocalEndPoint!).Port);
    }

    [SkippableFact]
    public void BindForConnect_RangeOutsideLocalRange_FourHundredConnectsToOneTargetOnDistinctPorts()
    {
        // The fallback bound with Socket.Bind (SO_REUSEADDR): two sockets shared a port and the second
        // connect to the target failed with EADDRNOTAVAIL, 'exhausted' long before the range was (issue 18).
        var range = FreeRangeOutsideLocalRange(1000);
        using var listener = Listening(512);
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < 400; i++)
            {
                sockets.Add(ConnectFrom(range, listener.LocalEndPoint!));
            }

            var ports = sockets.Select(s => ((IPEndPoint)s.LocalEndPoint!).Port).ToList();
            Assert.All(ports, p => Assert.True(range.Contains(p), $"{p} outside {range}"));
            Assert.Equal(400, ports.Distinct().Count());
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    [SkippableFact]
    public void BindForConnect_RangeOutsideLocalRangeFull_ThrowsExhaustedAfterEveryPortTaken()
    {
        var range = FreeRangeOutsideLocalRange(2);
        using var a = Listening();
        using var b = Listening();
        using var first = ConnectFrom(range, a.LocalEndPoint!);
        using var second = ConnectFrom(range, a.LocalEndPoint!);

        // One port per socket in the fallback: another target finds none free either.
        var e = Assert.Throws<SocketException>(() => ConnectFrom(range, b.LocalEndPoint!).Dispose());

        Assert.True(PortBinder.IsExhausted(e.SocketErrorCode), e.SocketErrorCode.ToString());
        Assert.NotEqual(((IPEndPoint)first.LocalEndPoint!).Port, ((IPEndPoint)second.LocalEndPoint!).Port);
    }

    [Fact]
    public void BindExclusive_PortHeldByAReuseAddrSocket_ThrowsAddressAlreadyInUse()
    {
        using var holder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        holder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

        var e = Assert.Throws<SocketException>(() => PortBinder.BindExclusive(socket, (IPEndPoint)holder.LocalEndPoint!));

        Assert.Equal(SocketError.AddressAlreadyInUse, e.SocketErrorCode);
    }

    private static Socket Listening(int backlog = 4)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(backlog);
        return listener;
    }

    /// <summary>A TCP connection to <paramref name="target"/> from loopback with a port of <paramref name="range"/>.</summary>
    private static Socket ConnectFrom(PortRange range, EndPoint target)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            PortBinder.BindForConnect(socket, IPAddress.Loopback, range);
            socket.Connect(target);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static bool KernelHasRange()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            probe.SetRawSocketOption((int)SocketOptionLevel.IP, PortBinder.IpLocalPortRange, PortBinder.RangeValue(new PortRange(40000, 40001)));
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ProtocolOption)
        {
            return false;
        }
    }

    /// <summary>
    /// A range of <paramref name="count"/> ports above the node's ip_local_port_range (where only the
    /// explicit-bind fallback applies), free of TCP sockets a moment ago; a skip when there is no room.
    /// </summary>
    private static PortRange FreeRangeOutsideLocalRange(int count)
    {
        var text = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
        var above = int.Parse(text[1], System.Globalization.CultureInfo.InvariantCulture) + 1;
        Skip.If(above + count > 65535, $"no {count} ports above ip_local_port_range ({text[0]}-{text[1]})");
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var low = Random.Shared.Next(above, 65536 - count);
            var held = Enumerable.Range(low, count).ToHashSet();
            if (!System.Net.NetworkInformation.IPGlobalProperties.GetIPGlobalProperties().GetActiveTcpConnections().Any(c => held.Contains(c.LocalEndPoint.Port))
                && !System.Net.NetworkInformation.IPGlobalProperties.GetIPGlobalProperties().GetActiveTcpListeners().Any(l => held.Contains(l.Port)))
            {
                return new PortRange((ushort)low, (ushort)(low + count - 1));
            }
        }
        throw new SkipException($"no free {count} ports above ip_local_port_range");
    }

    /// <summary>A range of <paramref name="count"/> ports inside the ephemeral range (where the kernel's option applies) that were free a moment ago.</summary>
    private static PortRange FreeRange(int count)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var low = Random.Shared.Next(40000, 60000 - count);
            var probes = new List<Socket>();
            try
            {
                for (var p = low; p < low + count; p++)
                {
                    var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    probes.Add(tcp);
                    tcp.Bind(new IPEndPoint(IPAddress.Loopback, p));
                    var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                    probes.Add(udp);
                    udp.Bind(new IPEndPoint(IPAddress.Loopback, p));
                }
                return new PortRange((ushort)low, (ushort)(low + count - 1));
            }
            catch (SocketException)
            {
            }
            finally
            {
                probes.ForEach(s => s.Dispose());
            }
        }
        throw new InvalidOperationException("no free port range in 40000-60000");
    }
}
