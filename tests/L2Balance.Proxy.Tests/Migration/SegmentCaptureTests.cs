using System.Buffers.Binary;
using System.Net;
using L2Balance.Proxy.Migration;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Migration;

public sealed class SegmentCaptureTests
{
    private static readonly IPEndPoint Client = IPEndPoint.Parse("198.18.64.7:40001");
    private static readonly IPEndPoint Vip = IPEndPoint.Parse("198.18.0.10:1080");

    /// <summary>An IPv4 packet (no options) with a TCP header of <paramref name="tcpHeader"/> bytes.</summary>
    private static byte[] Ipv4Tcp(uint seq, byte flags, int payload, int tcpHeader = 20, ushort fragment = 0)
    {
        var packet = new byte[20 + tcpHeader + payload];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(6), fragment);
        packet[9] = 6;
        Client.Address.TryWriteBytes(packet.AsSpan(12), out _);
        Vip.Address.TryWriteBytes(packet.AsSpan(16), out _);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20), (ushort)Client.Port);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), (ushort)Vip.Port);
        BinaryPrimitives.WriteUInt32BigEndian(packet.AsSpan(24), seq);
        packet[32] = (byte)(tcpHeader / 4 << 4);
        packet[33] = flags;
        return packet;
    }

    private static readonly IPEndPoint Client6 = IPEndPoint.Parse("[fdc6:1200:64::7]:40001");
    private static readonly IPEndPoint Vip6 = IPEndPoint.Parse("[fdc6:1200:10::a]:1080");

    /// <summary>An IPv6 packet with the extension headers <paramref name="extensions"/> (type, 8-byte units beyond the first) before a 20-byte TCP header.</summary>
    private static byte[] Ipv6Tcp(uint seq, int payload, params (byte Type, int Units)[] extensions)
    {
        var headers = extensions.Sum(e => (e.Units + 1) * 8);
        var packet = new byte[40 + headers + 20 + payload];
        packet[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)(packet.Length - 40));
        packet[6] = extensions.Length > 0 ? extensions[0].Type : (byte)6;
        Client6.Address.TryWriteBytes(packet.AsSpan(8), out _);
        Vip6.Address.TryWriteBytes(packet.AsSpan(24), out _);
        var at = 40;
        for (var i = 0; i < extensions.Length; i++)
        {
            packet[at] = i + 1 < extensions.Length ? extensions[i + 1].Type : (byte)6;
            packet[at + 1] = (byte)extensions[i].Units;
            at += (extensions[i].Units + 1) * 8;
        }
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(at), (ushort)Client6.Port);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(at + 2), (ushort)Vip6.Port);
        BinaryPrimitives.WriteUInt32BigEndian(packet.AsSpan(at + 4), seq);
        packet[at + 12] = 5 << 4;
        packet[at + 13] = 0x18;
        return packet;
    }

    [Fact]
    public void TryParse_Ipv6Tcp_FindsTheFlowSequenceAndPayload()
    {
        var header = TcpSegments.TryParse(Ipv6Tcp(0xFFFFFFF0, 100));

        Assert.NotNull(header);
        Assert.Equal(InboundFlow.Of(Client6, Vip6), header.Value.Flow);
        Assert.Equal((0xFFFFFFF0u, 60, 100, false), (header.Value.Seq, header.Value.PayloadOffset, header.Value.PayloadLength, header.Value.FinOrRst));
    }

    [Fact]
    public void TryParse_Ipv6TcpAfterHopByHopRoutingAndDestinationOptions_SkipsThem()
    {
        var header = TcpSegments.TryParse(Ipv6Tcp(7, 30, (0, 0), (43, 2), (60, 1)));

        Assert.NotNull(header);
        Assert.Equal(InboundFlow.Of(Client6, Vip6), header.Value.Flow);
        Assert.Equal((7u, 40 + 8 + 24 + 16 + 20, 30), (header.Value.Seq, header.Value.PayloadOffset, header.Value.PayloadLength));
    }

    [Fact]
    public void TryParse_Ipv6FragmentUnknownHeaderOverrunOrTooLongAChain_IsNull()
    {
        var overrun = Ipv6Tcp(1, 0, (60, 0));
        overrun[41] = 200;
        var udp = Ipv6Tcp(1, 10);
        udp[6] = 17;

        Assert.Null(TcpSegments.TryParse(Ipv6Tcp(1, 10, (44, 0))));
        Assert.Null(TcpSegments.TryParse(Ipv6Tcp(1, 10, (51, 1))));
        Assert.Null(TcpSegments.TryParse(overrun));
        Assert.Null(TcpSegments.TryParse(udp));
        Assert.Null(TcpSegments.TryParse(Ipv6Tcp(1, 10, [.. Enumerable.Repeat(((byte)60, 0), TcpSegments.MaxExtensionHeaders + 1)])));
        Assert.NotNull(TcpSegments.TryParse(Ipv6Tcp(1, 10, [.. Enumerable.Repeat(((byte)60, 0), TcpSegments.MaxExtensionHeaders)])));
        Assert.Null(TcpSegments.TryParse(Ipv6Tcp(1, 10).AsSpan(0, 59)));
    }

    [Fact]
    public void TryParse_Ipv4TcpWithOptions_FindsTheFlowSequenceAndPayload()
    {
        var header = TcpSegments.TryParse(Ipv4Tcp(0xFFFFFFF0, 0x18, 100, tcpHeader: 32));

        Assert.NotNull(header);
        Assert.Equal(InboundFlow.Of(Client, Vip), header.Value.Flow);
        Assert.Equal((0xFFFFFFF0u, 52, 100, false), (header.Value.Seq, header.Value.PayloadOffset, header.Value.PayloadLength, header.Value.FinOrRst));
    }

    [Theory]
    [InlineData((byte)0x11)]
    [InlineData((byte)0x04)]
    public void TryParse_FinOrRst_SaysSo(byte flags)
    {
        Assert.True(TcpSegments.TryParse(Ipv4Tcp(1, flags, 0))?.FinOrRst);
    }

    [Fact]
    public void TryParse_FragmentOrTruncatedOrNotTcp_IsNull()
    {
        var udp = Ipv4Tcp(1, 0x10, 10);
        udp[9] = 17;

        Assert.Null(TcpSegments.TryParse(Ipv4Tcp(1, 0x10, 10, fragment: 0x2000)));
        Assert.Null(TcpSegments.TryParse(Ipv4Tcp(1, 0x10, 10).AsSpan(0, 45)));
        Assert.Null(TcpSegments.TryParse(Ipv4Tcp(1, 0x10, 10, tcpHeader: 60).AsSpan(0, 50)));
        Assert.Null(TcpSegments.TryParse(udp));
        Assert.Null(TcpSegments.TryParse(new byte[19]));
    }

    [Fact]
    public void InboundFlow_Ipv4AndItsMappedForm_AreTheSameFlow()
    {
        Assert.Equal(InboundFlow.Of(Client, Vip), InboundFlow.Of(new IPEndPoint(Client.Address.MapToIPv6(), Client.Port), new IPEndPoint(Vip.Address.MapToIPv6(), Vip.Port)));
    }

    [Fact]
    public void Prepare_RoundTrip_KeepsTheFlows()
    {
        InboundFlow[] flows = [InboundFlow.Of(Client, Vip), InboundFlow.Of(IPEndPoint.Parse("[fdc6:1200:128::2]:9000"), IPEndPoint.Parse("[fdc6:1200:10::a]:21000"))];

        Assert.Equal(ParseStatus.Ok, MigrationMessages.TryParse(MigrationMessages.Prepare(2, MigrationFlows.Write(flows)), out var message));

        Assert.Equal((MigrationMessageType.Prepare, 2UL), (message.Type, message.Session));
        Assert.Equal(flows, MigrationFlows.TryRead(message.Payload.Span));
        Assert.Null(MigrationFlows.TryRead(new byte[35]));
    }

    [Fact]
    public void Prepared_RoundTrip_KeepsWhetherItCaptures()
    {
        Assert.Equal(ParseStatus.Ok, MigrationMessages.TryParse(MigrationMessages.Prepared(3, capturing: false), out var message));

        Assert.Equal((MigrationMessageType.Prepared, 3UL, false), (message.Type, message.Session, message.Ok));
    }

    private static CapturedSegment Segment(uint seq, int length) => new(seq, new byte[length], false);

    [Fact]
    public void CapturedFlow_PastItsSegmentBound_DropsTheOldest()
    {
        var flow = new CapturedFlow();

        for (uint i = 0; i <= CapturedFlow.MaxSegments; i++)
        {
            flow.Keep(Segment(1000 + i, 1));
        }

        Assert.Equal(CapturedFlow.MaxSegments, flow.Segments.Count);
        Assert.Equal((1001u, 1000u + CapturedFlow.MaxSegments, 1), (flow.Segments[0].Seq, flow.Segments[^1].Seq, flow.Evicted));
    }

    [Fact]
    public void CapturedFlow_PastItsByteBound_DropsTheOldestUntilTheNewestFits()
    {
        var flow = new CapturedFlow();

        flow.Keep(Segment(1, 100 * 1024));
        flow.Keep(Segment(100 * 1024 + 1, 100 * 1024));
        flow.Keep(Segment(200 * 1024 + 1, 100 * 1024));

        Assert.Equal([100u * 1024 + 1, 200u * 1024 + 1], flow.Segments.Select(s => s.Seq));
        Assert.Equal(1, flow.Evicted);
    }

    [Fact]
    public void CapturedFlow_ASegmentOverTheWholeBound_IsNotKeptAndEvictsNothing()
    {
        var flow = new CapturedFlow();
        flow.Keep(Segment(1, 10));

        flow.Keep(Segment(11, SegmentCapture.MaxBytesPerFlow + 1));

        Assert.Equal([1u], flow.Segments.Select(s => s.Seq));
    }

    [Fact]
    public void CapturedFlow_AnEvictedSegmentTheAppendNeeded_StopsTheAppendAtTheGap()
    {
        var flow = new CapturedFlow();
        for (uint i = 0; i <= CapturedFlow.MaxSegments; i++)
        {
            flow.Keep(Segment(1000 + i, 1));
        }

        // rcv_nxt 1000: the segment there went first, so nothing is contiguous from it; from 1001 everything kept is.
        Assert.Empty(ReceiveAppend.Contiguous(1000, flow.Segments, SegmentCapture.MaxBytesPerFlow));
        Assert.Equal(CapturedFlow.MaxSegments, ReceiveAppend.Contiguous(1001, flow.Segments, SegmentCapture.MaxBytesPerFlow).Length);
    }
}
