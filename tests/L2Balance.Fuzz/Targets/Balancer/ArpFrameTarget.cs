using System.Net;
using FsCheck;
using FsCheck.Fluent;
using L2Balance.Balancer.Protocol;
using L2Balance.Fuzz.Engine;

namespace L2Balance.Fuzz.Targets.Balancer;

/// <summary>
/// A frame on the ARP socket: <see cref="EthernetFrame.TryParse"/>, then for an ARP frame
/// <see cref="ArpPacket.TryParse"/> of its payload and the who-has test the responder makes. What
/// is accepted is written back: the header and the 28 ARP bytes, byte for byte.
/// </summary>
internal sealed class ArpFrameTarget : FuzzTarget<byte[], ArpFrameTarget.Result>
{
    private static readonly IPAddress Vip = IPAddress.Parse("198.18.0.10");
    private static readonly MacAddress Own = MacAddress.Parse("02:00:00:00:00:01");
    private static readonly MacAddress Cluster = MacAddress.Parse("03:bf:c6:12:00:0a");

    public override string Name => "arp-frame";

    public override string Product => "l2bal";

    public override string EntryPoint => "EthernetFrame.TryParse + ArpPacket.TryParse";

    public override int MaxInputLength => 1600;

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        Frame(new ArpPacket(ArpOperation.Request, MacAddress.Parse("02:00:00:00:00:99"), IPAddress.Parse("198.18.0.99"), MacAddress.Zero, Vip), MacAddress.Broadcast),
        Frame(ArpPacket.Gratuitous(Cluster, Vip), MacAddress.Broadcast),
        Frame(new ArpPacket(ArpOperation.Reply, MacAddress.Parse("02:00:00:00:00:66"), Vip, Own, IPAddress.Parse("198.18.0.1")), Own),
        [.. Frame(new ArpPacket(ArpOperation.Request, Own, Vip, MacAddress.Zero, Vip), Cluster)[..12], 0x81, 0x00, 0, 1, 0x08, 0x06],
    ];

    public override Gen<byte[]> Generator { get; } =
        from op in Gen.Elements(0, 1, 2, 3, 8)
        from macs in Gen.Choose(0, 255).Select(b => (byte)b).ArrayOf(12)
        from ips in Gen.Choose(0, 255).Select(b => (byte)b).ArrayOf(8)
        from forVip in Gen.Elements(true, false)
        let sender = MacAddress.Read([(byte)(macs[0] & 0xfe), .. macs.AsSpan(1, 5)])
        select Frame(new ArpPacket((ArpOperation)op, sender, new IPAddress(ips[..4]), MacAddress.Read(macs.AsSpan(6)),
            forVip ? Vip : new IPAddress(ips[4..])), MacAddress.Broadcast);

    public override IReadOnlyList<byte[]> Tokens { get; } = [[0x08, 0x06], [0x08, 0x00], [0x81, 0x00], [0x88, 0xa8], [0, 1], [6, 4], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]];

    protected override byte[] Convert(byte[] input, ref FuzzRandom random) => input;

    protected override Result Parse(byte[] input)
    {
        if (!EthernetFrame.TryParse(input, out var header, out var ethernet))
        {
            return new Result(ethernet, default, null, default, false);
        }

        if (header.EtherType != EthernetFrame.EtherTypeArp)
        {
            return new Result(ethernet, header, null, default, false);
        }

        bool arp = ArpPacket.TryParse(input.AsSpan(EthernetFrame.HeaderLength), out var packet, out var rejection);
        return new Result(ethernet, header, rejection, packet, arp && packet.IsRequestFor(Vip));
    }

    protected override bool IsAccepted(Result result) => result.Arp == ArpRejection.None;

    protected override void Check(byte[] input, Result result)
    {
        Require((result.Ethernet == EthernetRejection.None) == (result.Header != default), $"Ethernet {result.Ethernet} with header {result.Header}");
        if (result.Ethernet != EthernetRejection.None)
        {
            return;
        }

        var header = new byte[EthernetFrame.HeaderLength];
        EthernetFrame.Write(result.Header, header);
        Require(header.AsSpan().SequenceEqual(input.AsSpan(0, EthernetFrame.HeaderLength)), "the Ethernet header is not written back as it came");
        if (result.Arp != ArpRejection.None)
        {
            Require(result.Packet == default && !result.WhoHasVip, "a refused ARP packet leaked its fields");
            return;
        }

        var packet = new byte[ArpPacket.Length];
        result.Packet.Write(packet);
        Require(packet.AsSpan().SequenceEqual(input.AsSpan(EthernetFrame.HeaderLength, ArpPacket.Length)), "the ARP packet is not written back as it came");
    }

    private static byte[] Frame(ArpPacket packet, MacAddress destination)
    {
        var frame = new byte[EthernetFrame.MinimumLength];
        packet.WriteFrame(frame, destination, Own);
        return frame;
    }

    /// <summary>Arp is null when the frame is not an ARP frame.</summary>
    internal readonly record struct Result(EthernetRejection Ethernet, EthernetHeader Header, ArpRejection? Arp, ArpPacket Packet, bool WhoHasVip);
}
