using System.Net;
using L2Balance.Balancer.Kernel;
using Xunit;

namespace L2Balance.L2Bal.Tests.Kernel;

public class ConntrackTableTests
{
    private const string Table =
        "ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.0.101 dst=198.18.0.10 sport=44369 dport=8080 src=198.18.0.10 dst=198.18.0.101 sport=8080 dport=44369 [ASSURED] mark=65870 zone=0 use=2\n"
        + "ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.0.102 dst=198.18.0.10 sport=44370 dport=8080 src=198.18.0.10 dst=198.18.0.102 sport=8080 dport=44370 [ASSURED] mark=65870 zone=0 use=2\n"
        + "ipv4     2 tcp      6 110 TIME_WAIT src=198.18.0.103 dst=198.18.0.10 sport=1 dport=8080 src=198.18.0.10 dst=198.18.0.103 sport=8080 dport=1 [ASSURED] mark=65536 zone=0 use=2\n"
        + "ipv4     2 udp      17 29 src=198.18.0.104 dst=198.18.0.10 sport=5000 dport=53 [UNREPLIED] src=198.18.0.10 dst=198.18.0.104 sport=53 dport=5000 mark=65537 zone=0 use=2\n"
        + "ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.0.1 dst=198.18.0.200 sport=2 dport=22 src=198.18.0.200 dst=198.18.0.1 sport=22 dport=2 [ASSURED] mark=65538 zone=0 use=2\n"
        + "ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.0.105 dst=198.18.0.10 sport=3 dport=8080 src=198.18.0.10 dst=198.18.0.105 sport=8080 dport=3 [ASSURED] mark=0 zone=0 use=2\n"
        + "ipv6     10 tcp      6 431999 ESTABLISHED src=fdc6::1 dst=fdc6::10 sport=3 dport=8080 src=fdc6::10 dst=fdc6::1 sport=8080 dport=3 [ASSURED] mark=65539 zone=0 use=2\n";

    [Fact]
    public void CountByBucket_EstablishedFlowsToTheVip_AreCountedByMark()
    {
        var counts = ConntrackTable.CountByBucket(new StringReader(Table), IPAddress.Parse("198.18.0.10"), 4096);

        // 0x1014e = 65870 → bucket 334 (twice); TIME_WAIT skipped; UDP 65537 → bucket 1; other dst, mark 0, IPv6 skipped.
        Assert.Equal(new Dictionary<int, int> { [334] = 2, [1] = 1 }, counts);
    }

    [Fact]
    public void CountByBucket_TcpFlowsPastAFin_CountOnlyWhileAProcessHoldsTheirConnection()
    {
        string Line(string state, int port) =>
            $"ipv4     2 tcp      6 50 {state} src=198.18.0.101 dst=198.18.0.10 sport={port} dport=8080 src=198.18.0.10 dst=198.18.0.101 sport=8080 dport={port} [ASSURED] mark=65541 zone=0 use=2\n";
        var table = Line("SYN_RECV", 1) + Line("FIN_WAIT", 2) + Line("CLOSE_WAIT", 3) + Line("LAST_ACK", 4) + Line("TIME_WAIT", 5) + Line("CLOSE", 6);
        var asked = new List<(IPAddress, int, int)>();

        var withoutSockets = ConntrackTable.CountByBucket(new StringReader(table), IPAddress.Parse("198.18.0.10"), 4096);
        var withSockets = ConntrackTable.CountByBucket(new StringReader(table), IPAddress.Parse("198.18.0.10"), 4096,
            liveConnection: (client, port, vipPort) =>
            {
                asked.Add((client, port, vipPort));
                // Half-closed clients: one in CLOSE_WAIT, one whose resent FIN took conntrack to TIME_WAIT; the others closed here.
                return port is 3 or 5;
            });

        // 65541 = 0x10005 → bucket 5; SYN_RECV counts by itself.
        Assert.Equal(new Dictionary<int, int> { [5] = 1 }, withoutSockets);
        Assert.Equal(new Dictionary<int, int> { [5] = 3 }, withSockets);
        Assert.Equal([.. new[] { 2, 3, 4, 5, 6 }.Select(p => (IPAddress.Parse("198.18.0.101"), p, 8080))], asked);
    }

    [Fact]
    public void CountByBucket_BucketsBeyondBOrGarbage_AreIgnored()
    {
        var counts = ConntrackTable.CountByBucket(new StringReader(Table + "garbage\n\n"), IPAddress.Parse("198.18.0.10"), 100);

        Assert.Equal(new Dictionary<int, int> { [1] = 1 }, counts);
    }

    [Fact]
    public void CountByBucket_FlowsToTheIpv6Vip_AreCountedInTheKernelsUncompressedForm()
    {
        // %pI6: eight groups of four digits, as /proc/net/nf_conntrack prints IPv6.
        const string Ipv6 =
            "ipv6     10 tcp      6 431999 ESTABLISHED src=fdc6:1200:0010:0000:0000:0000:0000:0065 dst=fdc6:1200:0010:0000:0000:0000:0000:000a sport=4 dport=1080 src=fdc6:1200:0010:0000:0000:0000:0000:000a dst=fdc6:1200:0010:0000:0000:0000:0000:0065 sport=1080 dport=4 [ASSURED] mark=65541 zone=0 use=2\n"
            + "ipv6     10 udp      17 29 src=fdc6:1200:0010:0000:0000:0000:0000:0066 dst=fdc6:1200:0010:0000:0000:0000:0000:000b sport=5 dport=53 src=fdc6:1200:0010:0000:0000:0000:0000:000b dst=fdc6:1200:0010:0000:0000:0000:0000:0066 sport=53 dport=5 mark=65542 zone=0 use=2\n";

        var counts = ConntrackTable.CountByBucket(new StringReader(Table + Ipv6), IPAddress.Parse("198.18.0.10"), 4096, vip6: IPAddress.Parse("fdc6:1200:10::a"));

        // IPv4 as before; bucket 5 to the IPv6 VIP; fdc6::10 and ::b are other destinations.
        Assert.Equal(new Dictionary<int, int> { [334] = 2, [1] = 1, [5] = 1 }, counts);
    }

    [Fact]
    public void CountByBucket_AnIpv6VipAlone_CountsOnlyItsFlows()
    {
        const string Ipv6 =
            "ipv6     10 tcp      6 431999 ESTABLISHED src=fdc6:1200:0010:0000:0000:0000:0000:0065 dst=fdc6:1200:0010:0000:0000:0000:0000:000a sport=4 dport=1080 src=fdc6:1200:0010:0000:0000:0000:0000:000a dst=fdc6:1200:0010:0000:0000:0000:0000:0065 sport=1080 dport=4 [ASSURED] mark=65541 zone=0 use=2\n";

        var counts = ConntrackTable.CountByBucket(new StringReader(Table + Ipv6), null, 4096, vip6: IPAddress.Parse("fdc6:1200:10::a"));

        // No IPv4 VIP: the IPv4 flows of the table are none of this node's draining.
        Assert.Equal(new Dictionary<int, int> { [5] = 1 }, counts);
        Assert.Throws<ArgumentNullException>(() => ConntrackTable.CountByBucket(new StringReader(Table), null, 4096));
    }

    [Fact]
    public void CountByBucket_UdpToAStatelessPort_IsNeverDraining()
    {
        var counts = ConntrackTable.CountByBucket(new StringReader(Table), IPAddress.Parse("198.18.0.10"), 4096, [53]);

        // The UDP flow to port 53 (affinity none) is not counted; TCP flows to 8080 still are.
        Assert.Equal(new Dictionary<int, int> { [334] = 2 }, counts);
    }
}
