using System.Net;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Protocol;

/// <summary>Neighbour discovery for the IPv6 VIP, checked against frames Linux itself sent (docs/design.md#ndp).</summary>
public class NeighborPacketTests
{
    private static readonly IPAddress Vip = IPAddress.Parse("fdc6:1200:10::65");
    private static readonly MacAddress Own = MacAddress.Parse("02:00:00:00:00:02");
    private static readonly MacAddress Cluster = MacAddress.Parse("02:00:00:00:00:0b");

    // Recorded from Linux in a namespace pair: fdc6:1200:10::1 (02:00:00:00:00:0a) solicits fdc6:1200:10::65, whose kernel answers.
    private const string KernelSolicitation =
        "3333ff00006502000000000a86dd6000000000203afffdc61200001000000000000000000001ff0200000000000000000001ff000065"
        + "8700571c00000000fdc61200001000000000000000000065010102000000000a";

    private const string KernelAdvertisement =
        "02000000000a02000000000b86dd6000000000203afffdc61200001000000000000000000065fdc61200001000000000000000000001"
        + "8800e34860000000fdc61200001000000000000000000065020102000000000b";

    private static byte[] Packet(string frameHex) => Convert.FromHexString(frameHex)[EthernetFrame.HeaderLength..];

    private static NeighborRejection Reject(byte[] packet)
    {
        Assert.False(NeighborPacket.TryParse(packet, out _, out var rejection));
        return rejection;
    }

    [Fact]
    public void TryParse_KernelSolicitation_ReadsEveryField()
    {
        Assert.True(NeighborPacket.TryParse(Packet(KernelSolicitation), out var ns, out var rejection), rejection.ToString());
        Assert.Equal(NeighborMessageType.Solicitation, ns.Type);
        Assert.Equal(IPAddress.Parse("fdc6:1200:10::1"), ns.Source);
        Assert.Equal(IPAddress.Parse("ff02::1:ff00:65"), ns.Destination);
        Assert.True(ns.IsSolicitationFor(Vip));
        Assert.False(ns.IsSolicitationFor(IPAddress.Parse("fdc6:1200:10::66")));
        Assert.Equal(MacAddress.Parse("02:00:00:00:00:0a"), ns.LinkLayer);
    }

    [Fact]
    public void TryParse_KernelAdvertisement_ReadsFlagsAndTargetMac()
    {
        Assert.True(NeighborPacket.TryParse(Packet(KernelAdvertisement), out var na, out _));
        Assert.Equal(NeighborMessageType.Advertisement, na.Type);
        Assert.Equal(Vip, na.Target);
        Assert.True(na.Solicited);
        Assert.True(na.Override);
        Assert.Equal(Cluster, na.LinkLayer);
    }

    [Fact]
    public void WriteAnswerFrame_KernelSolicitation_IsTheKernelsAdvertisementFromOurMac()
    {
        var frame = Convert.FromHexString(KernelSolicitation);
        Assert.True(NeighborPacket.TryParse(frame.AsSpan(EthernetFrame.HeaderLength), out var ns, out _));
        var answer = new byte[NeighborPacket.AdvertisementFrameLength];
        int n = NeighborPacket.WriteAnswerFrame(answer, ns, MacAddress.Read(frame.AsSpan(6)), Own, Cluster, Vip);
        var expected = Convert.FromHexString(KernelAdvertisement);
        Assert.Equal(expected.Length, n);
        Assert.Equal(expected[EthernetFrame.HeaderLength..], answer[EthernetFrame.HeaderLength..n]);
        Assert.Equal(expected[..6], answer[..6]);
        Assert.Equal(Own, MacAddress.Read(answer.AsSpan(6)));
    }

    [Fact]
    public void WriteAnswerFrame_DadSolicitation_GoesToAllNodesUnsolicited()
    {
        var ns = new NeighborPacket(NeighborMessageType.Solicitation, IPAddress.IPv6Any, NeighborPacket.SolicitedNodeGroup(Vip), Vip, null, false, false);
        var answer = new byte[NeighborPacket.AdvertisementFrameLength];
        NeighborPacket.WriteAnswerFrame(answer, ns, MacAddress.Parse("02:00:00:00:00:0c"), Own, Cluster, Vip);
        Assert.Equal(MacAddress.Parse("33:33:00:00:00:01"), MacAddress.Read(answer));
        Assert.True(NeighborPacket.TryParse(answer.AsSpan(EthernetFrame.HeaderLength), out var na, out _));
        Assert.Equal(NeighborPacket.AllNodes, na.Destination);
        Assert.False(na.Solicited);
    }

    [Fact]
    public void WriteUnsolicitedFrame_AnyVip_AnnouncesTheClusterMacToAllNodes()
    {
        var frame = new byte[NeighborPacket.AdvertisementFrameLength];
        NeighborPacket.WriteUnsolicitedFrame(frame, Own, Cluster, Vip);
        Assert.Equal(MacAddress.Parse("33:33:00:00:00:01"), MacAddress.Read(frame));
        Assert.True(NeighborPacket.TryParse(frame.AsSpan(EthernetFrame.HeaderLength), out var na, out var rejection), rejection.ToString());
        Assert.Equal((Vip, Vip, NeighborPacket.AllNodes), (na.Source, na.Target, na.Destination));
        Assert.Equal((false, true, (MacAddress?)Cluster), (na.Solicited, na.Override, na.LinkLayer));
        Assert.Throws<ArgumentException>(() => NeighborPacket.WriteUnsolicitedFrame(frame, Cluster, Cluster, Vip));
        Assert.Throws<ArgumentException>(() => NeighborPacket.WriteUnsolicitedFrame(frame, Own, Cluster, IPAddress.Parse("198.18.0.10")));
    }

    [Fact]
    public void SolicitedNodeGroup_OfTheVip_MapsToItsEthernetGroup()
    {
        var group = NeighborPacket.SolicitedNodeGroup(IPAddress.Parse("fdc6:1200:10::a:1234:5678"));
        Assert.Equal(IPAddress.Parse("ff02::1:ff34:5678"), group);
        Assert.Equal(MacAddress.Parse("33:33:ff:34:56:78"), NeighborPacket.MulticastMac(group));
        Assert.Throws<ArgumentException>(() => NeighborPacket.MulticastMac(Vip));
    }

    [Fact]
    public void TryParse_MalformedPackets_AreCountedDropsByReason()
    {
        var ns = Packet(KernelSolicitation);
        Assert.Equal(NeighborRejection.Truncated, Reject(ns[..39]));
        Assert.Equal(NeighborRejection.Truncated, Reject(ns[..^1]));
        Assert.Equal(NeighborRejection.NotIPv6, Reject(With(ns, 0, 0x40)));
        Assert.Equal(NeighborRejection.NotIcmpv6, Reject(With(ns, 6, 17)));
        Assert.Equal(NeighborRejection.NotNeighborMessage, Reject(With(ns, 40, 128)));
        Assert.Equal(NeighborRejection.BadHopLimit, Reject(With(ns, 7, 254)));
        Assert.Equal(NeighborRejection.BadCode, Reject(Fixed(With(ns, 41, 1))));
        Assert.Equal(NeighborRejection.BadChecksum, Reject(With(ns, 63, 0x66)));
        Assert.Equal(NeighborRejection.BadOption, Reject(Fixed(With(ns, 65, 0))));
        Assert.Equal(NeighborRejection.BadOption, Reject(Fixed(With(ns, 65, 2))));
        Assert.Equal(NeighborRejection.MulticastTarget, Reject(Fixed(With(ns, 48, 0xff))));
        // A DAD probe (unspecified source) must not carry a source link-layer option.
        var dad = (byte[])ns.Clone();
        Array.Clear(dad, 8, 16);
        Assert.Equal(NeighborRejection.BadDadSolicitation, Reject(Fixed(dad)));
        // A solicited advertisement to a multicast address.
        var na = Packet(KernelAdvertisement);
        IPAddress.Parse("ff02::1").GetAddressBytes().CopyTo(na, 24);
        Assert.Equal(NeighborRejection.SolicitedToMulticast, Reject(Fixed(na)));
    }

    [Fact]
    public void TryParse_RandomMutations_NeverThrow()
    {
        var rng = new Random(17);
        var original = Packet(KernelSolicitation);
        for (int i = 0; i < 20_000; i++)
        {
            var p = (byte[])original.Clone();
            for (int k = rng.Next(1, 4); k > 0; k--)
            {
                p[rng.Next(p.Length)] = (byte)rng.Next(256);
            }
            var cut = p.AsSpan(0, rng.Next(p.Length + 1));
            _ = NeighborPacket.TryParse(rng.Next(2) == 0 ? cut : Fixed(p), out _, out _);
        }
    }

    private static byte[] With(byte[] packet, int offset, byte value)
    {
        var copy = (byte[])packet.Clone();
        copy[offset] = value;
        return copy;
    }

    /// <summary>Recomputes the checksum so that the check under test is the one that fails.</summary>
    private static byte[] Fixed(byte[] packet)
    {
        if (packet.Length < 44)
        {
            return packet;
        }
        var icmp = packet.AsSpan(40);
        icmp[2] = icmp[3] = 0;
        var sum = NeighborPacket.Checksum(packet.AsSpan(8, 16), packet.AsSpan(24, 16), icmp);
        icmp[2] = (byte)(sum >> 8);
        icmp[3] = (byte)sum;
        return packet;
    }
}
