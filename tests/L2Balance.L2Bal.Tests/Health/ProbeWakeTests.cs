using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Health;
using Xunit;

namespace L2Balance.L2Bal.Tests.Health;

/// <summary>
/// The port-unreachable wake of <see cref="HealthMonitor"/> without the nflog socket (the lab
/// checks that part): which ports wake which probe, the rate limit, and that a woken probe runs
/// before its interval. DNS on loopback sockets of the test process only.
/// </summary>
public sealed class ProbeWakeTests
{
    private static readonly IPAddress Vip = IPAddress.Parse("198.18.0.10");

    [Fact]
    public void WakePorts_DnsProbesOfTheVipOrLoopback_AreTheirPortsOnly()
    {
        var options = Options(TimeSpan.FromSeconds(1), Dns(Vip, 53), Dns(IPAddress.Loopback, 5353), Dns(IPAddress.Parse("198.18.0.99"), 54),
            new HealthProbeSpec(HealthProbeKind.Socks5, new IPEndPoint(Vip, 1080)), Dns(Vip, 53));
        Assert.Equal([53, 5353], HealthMonitor.WakePorts(options));
        Assert.Empty(HealthMonitor.WakePorts(options with { Vip = null }));
    }

    [Fact]
    public void Wake_PortOfNoProbeOrProbeNotYetPassing_IsIgnoredByReason()
    {
        using var monitor = new HealthMonitor(Options(TimeSpan.FromSeconds(1), Dns(Vip, 53)), new BalancerLog(TextWriter.Null), watchPortUnreachables: false);
        monitor.Wake(5353);
        monitor.Wake(53);
        var counters = monitor.WakeCounters;
        Assert.Equal((0L, 1L, 1L, 0L), (counters.Wakes, counters.IgnoredNotService, counters.IgnoredFailing, counters.IgnoredRateLimited));
    }

    [Fact]
    public async Task Wake_ServiceDiedWhileHealthy_ProbeRunsAtOnceAndTheNodeTurnsUnhealthyBeforeItsInterval()
    {
        var server = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        server.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)server.LocalEndPoint!).Port;
        using var answering = new CancellationTokenSource();
        var answers = Task.Run(() => Answer(server, answering.Token));
        // The first probe comes one interval after the start; the second would come a whole interval after that.
        var interval = TimeSpan.FromSeconds(3);
        using var monitor = new HealthMonitor(Options(interval, Dns(IPAddress.Loopback, port)), new BalancerLog(TextWriter.Null), watchPortUnreachables: false);
        using var changed = new SemaphoreSlim(0);
        monitor.Changed = () => changed.Release();
        using var stop = new CancellationTokenSource();
        var probes = monitor.Start(stop.Token);
        try
        {
            Assert.True(await changed.WaitAsync(TimeSpan.FromSeconds(10)), "the first probe never passed");
            Assert.True(monitor.View.Healthy);
            var passedAt = DateTime.UtcNow;
            await answering.CancelAsync();
            await answers;
            server.Dispose();
            monitor.Wake(port);
            monitor.Wake(port);
            Assert.True(await changed.WaitAsync(interval), "the woken probe did not turn the node unhealthy");
            Assert.True(DateTime.UtcNow - passedAt < interval, "the verdict came with the interval's probe, not the woken one");
            Assert.False(monitor.View.Healthy);
            Assert.Equal(HealthFailure.NothingListens, monitor.View.LastFailure.Failure);
            var counters = monitor.WakeCounters;
            // The second wake ran no probe: rate-limited, or (on a slow machine, after 10 ms) the probe was already failing.
            Assert.Equal((1L, 1L), (counters.Wakes, counters.IgnoredRateLimited + counters.IgnoredFailing));
        }
        finally
        {
            await stop.CancelAsync();
            await probes;
        }
    }

    private static HealthProbeSpec Dns(IPAddress address, int port) =>
        new(HealthProbeKind.Dns, new IPEndPoint(address, port), DnsName: "probe.lab") { DnsWireName = DnsProbeCodec.EncodeName("probe.lab", out _) };

    private static BalancerOptions Options(TimeSpan interval, params HealthProbeSpec[] probes) => new()
    {
        Interface = "eth0",
        NodeId = 1,
        NodeCount = 2,
        KeyFile = "key",
        Vip = Vip,
        Health = probes,
        HealthInterval = interval,
        HealthTimeout = TimeSpan.FromMilliseconds(500),
    };

    /// <summary>Answers every query with one A record until <paramref name="stop"/>.</summary>
    private static void Answer(Socket server, CancellationToken stop)
    {
        var buffer = new byte[512];
        server.ReceiveTimeout = 50;
        while (!stop.IsCancellationRequested)
        {
            EndPoint from = new IPEndPoint(IPAddress.Any, 0);
            int n;
            try
            {
                n = server.ReceiveFrom(buffer, ref from);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                continue;
            }
            byte[] reply = [.. buffer[..n], 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, 1];
            reply[2] = 0x85;
            reply[3] = 0x80;
            reply[7] = 1;
            server.SendTo(reply, from);
        }
    }
}
