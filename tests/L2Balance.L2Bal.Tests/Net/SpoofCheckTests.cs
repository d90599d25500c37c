using System.Net;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Net;

/// <summary>Spoofing is told from ordinary frames by a pure function (docs/design.md#spoofing).</summary>
public class SpoofCheckTests
{
    private static readonly IPAddress Vip = IPAddress.Parse("198.18.0.10");
    private static readonly MacAddress Cluster = MacAddress.Parse("02:c1:c6:12:00:0a");
    private static readonly MacAddress Peer = MacAddress.Parse("02:00:00:00:00:02");
    private static readonly MacAddress Attacker = MacAddress.Parse("02:00:00:00:00:15");
    private static readonly MacAddress Router = MacAddress.Parse("02:00:00:00:00:fe");
    private static readonly IPAddress RouterIp = IPAddress.Parse("198.18.0.254");
    private static readonly SpoofCheck Check = new(Vip, Cluster);

    private static byte[] Frame(MacAddress ethernetSource, ArpPacket arp, MacAddress? destination = null)
    {
        var frame = new byte[EthernetFrame.MinimumLength];
        return arp.WriteFrame(frame, destination ?? MacAddress.Broadcast, ethernetSource) == frame.Length ? frame : [];
    }

    private static SpoofKind Classify(byte[] frame) => Check.Classify(frame, out _);

    [Fact]
    public void Classify_PeersReplyForTheVip_IsNoSpoof()
    {
        var request = new ArpPacket(ArpOperation.Request, Router, RouterIp, MacAddress.Zero, Vip);
        Assert.Equal(SpoofKind.None, Classify(Frame(Peer, ArpPacket.Reply(request, Cluster), Router)));
    }

    [Fact]
    public void Classify_PeersGratuitousArp_IsNoSpoof() =>
        Assert.Equal(SpoofKind.None, Classify(Frame(Peer, ArpPacket.Gratuitous(Cluster, Vip))));

    [Fact]
    public void Classify_WhoHasForTheVip_IsNoSpoof() =>
        Assert.Equal(SpoofKind.None, Classify(Frame(Router, new ArpPacket(ArpOperation.Request, Router, RouterIp, MacAddress.Zero, Vip))));

    [Fact]
    public void Classify_GratuitousArpClaimingTheVipAtAnotherMac_IsVipClaimedNamingThatMac()
    {
        var frame = Frame(Attacker, ArpPacket.Gratuitous(Attacker, Vip));
        Assert.Equal(SpoofKind.VipClaimed, Check.Classify(frame, out var offender));
        Assert.Equal(Attacker, offender);
    }

    [Fact]
    public void Classify_ReplyClaimingTheVipSentFromAnyEthernetSource_IsVipClaimed()
    {
        var claim = new ArpPacket(ArpOperation.Reply, Attacker, Vip, Router, RouterIp);
        Assert.Equal(SpoofKind.VipClaimed, Classify(Frame(Attacker, claim, Router)));
        Assert.Equal(SpoofKind.VipClaimed, Classify(Frame(Peer, claim, Router)));
    }

    [Fact]
    public void Classify_WithoutAnIpv4Vip_SeesOnlyTheClusterMacSource()
    {
        var alone = new SpoofCheck(null, Cluster);

        Assert.Equal(SpoofKind.None, alone.Classify(Frame(Attacker, ArpPacket.Gratuitous(Attacker, Vip)), out _));
        Assert.Equal(SpoofKind.None, alone.Classify(Frame(Attacker, ArpPacket.Gratuitous(Attacker, IPAddress.Any)), out _));
        Assert.Equal(SpoofKind.ClusterMacSource, alone.Classify(Frame(Cluster, ArpPacket.Gratuitous(Cluster, Vip)), out var offender));
        Assert.Equal(Cluster, offender);
    }

    [Fact]
    public void Classify_RequestWithTheVipAsSender_IsVipClaimed() =>
        Assert.Equal(SpoofKind.VipClaimed, Classify(Frame(Attacker, new ArpPacket(ArpOperation.Request, Attacker, Vip, MacAddress.Zero, RouterIp))));

    [Fact]
    public void Classify_ReplyForAnotherAddress_IsNoSpoof() =>
        Assert.Equal(SpoofKind.None, Classify(Frame(Attacker, new ArpPacket(ArpOperation.Reply, Attacker, IPAddress.Parse("198.18.0.11"), Router, RouterIp), Router)));

    [Fact]
    public void Classify_AnyFrameFromTheClusterMac_IsClusterMacSource()
    {
        var ipv4 = new byte[EthernetFrame.MinimumLength];
        EthernetFrame.Write(new EthernetHeader(MacAddress.Broadcast, Cluster, EthernetFrame.EtherTypeIPv4), ipv4);
        Assert.Equal(SpoofKind.ClusterMacSource, Check.Classify(ipv4, out var offender));
        Assert.Equal(Cluster, offender);
        Assert.Equal(SpoofKind.ClusterMacSource, Classify(Frame(Cluster, ArpPacket.Gratuitous(Cluster, Vip))));
    }

    [Fact]
    public void Classify_ShortOrMalformedFrames_AreNoSpoof()
    {
        var claim = Frame(Attacker, ArpPacket.Gratuitous(Attacker, Vip));
        Assert.Equal(SpoofKind.None, Classify(claim[..13]));
        Assert.Equal(SpoofKind.None, Classify(claim[..(EthernetFrame.HeaderLength + ArpPacket.Length - 1)]));
        var badHardware = (byte[])claim.Clone();
        badHardware[EthernetFrame.HeaderLength + 1] = 6;
        Assert.Equal(SpoofKind.None, Classify(badHardware));
        var random = new Random(14);
        for (var i = 0; i < 10_000; i++)
        {
            var garbage = new byte[random.Next(0, 80)];
            random.NextBytes(garbage);
            Assert.NotEqual(SpoofKind.ClusterMacSource, Classify(garbage));
        }
    }

    [Theory]
    [InlineData(true, "fdc6:1200:10::1", "fdc6:1200:10::a", "02:00:00:00:00:99", true)]
    [InlineData(true, "fdc6:1200:10::1", "fdc6:1200:10::a", "01:00:5e:40:00:0a", false)]
    [InlineData(true, "fdc6:1200:10::1", "fdc6:1200:10::a", null, false)]
    [InlineData(true, "fdc6:1200:10::a", "fdc6:1200:10::b", "02:00:00:00:00:99", false)]
    [InlineData(false, "fdc6:1200:10::a", "fdc6:1200:10::1", "02:00:00:00:00:99", true)]
    [InlineData(false, "fdc6:1200:10::1", "fdc6:1200:10::a", "02:00:00:00:00:99", false)]
    public void ClassifyNeighborSpoof_VipAtAnotherMac_IsVipClaimed(bool advertisement, string source, string target, string? mac, bool claimed)
    {
        var packet = new NeighborPacket(advertisement ? NeighborMessageType.Advertisement : NeighborMessageType.Solicitation, IPAddress.Parse(source), IPAddress.Parse("ff02::1"), IPAddress.Parse(target),
            mac is null ? null : MacAddress.Parse(mac), false, true);
        var kind = ArpResponder.ClassifyNeighborSpoof(packet, IPAddress.Parse("fdc6:1200:10::a"), MacAddress.Parse("01:00:5e:40:00:0a"), out var offender);
        Assert.Equal(claimed ? SpoofKind.VipClaimed : SpoofKind.None, kind);
        Assert.Equal(claimed ? MacAddress.Parse(mac!) : default, offender);
    }
}
