using System.Buffers.Binary;
using System.Net;
using L2Balance.Proxy.Migration;
using Xunit;

namespace L2Balance.Proxy.Tests.Migration;

public sealed class FlowFilterTests
{
    private static readonly IPEndPoint Vip = IPEndPoint.Parse("198.18.0.10:1080");
    private static readonly IPEndPoint Client = IPEndPoint.Parse("198.18.64.7:40001");
    private static readonly IPEndPoint Vip6 = IPEndPoint.Parse("[fdc6:1200::10]:1080");
    private static readonly IPEndPoint Client6 = IPEndPoint.Parse("[fdc6:1200:40::7]:40001");

    /// <summary>The inbound segment Client → Vip (its flow is <c>InboundFlow.Of(client, vip)</c>).</summary>
    private static byte[] Segment(IPEndPoint client, IPEndPoint vip)
    {
        var packet = new byte[TcpAck.MaxPacketLength];
        var length = TcpAck.BuildPacket(packet, client, vip, new TcpAckPoint(1, 2, 3, null));
        return packet[..length];
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Program_WatchedPortPair_PassesWholeAndOthersDrop(bool v6)
    {
        var (client, vip) = v6 ? (Client6, Vip6) : (Client, Vip);
        var program = FlowFilter.Program([FlowFilter.PortWord(InboundFlow.Of(new IPEndPoint(client.Address, 5), vip)), FlowFilter.PortWord(InboundFlow.Of(client, vip))]);

        Assert.Equal(0xFFFFu, Run(program, Segment(client, vip), v6));
        Assert.Equal(0u, Run(program, Segment(new IPEndPoint(client.Address, 40002), vip), v6));
        Assert.Equal(0u, Run(program, Segment(vip, client), v6)); // the reverse direction is another pair
    }

    [Fact]
    public void Program_NoFlowsOrNotTcp_DropsAndIpv6ExtensionHeadersPassForUserSpace()
    {
        var program = FlowFilter.Program([]);
        var udp = Segment(Client, Vip);
        udp[9] = 17;
        var hopByHop = Segment(Client6, Vip6);
        hopByHop[6] = 0;

        Assert.Equal(0u, Run(program, Segment(Client, Vip), v6: false));
        Assert.Equal(0u, Run(FlowFilter.Program([FlowFilter.PortWord(InboundFlow.Of(Client, Vip))]), udp, v6: false));
        Assert.Equal(0xFFFFu, Run(program, hopByHop, v6: true));
        Assert.Equal(0u, Run(program, [0x45, 0, 0, 20], v6: false, protocol: 0x0806));
    }

    [Fact]
    public void Program_TooManyPairs_IsRefusedAndTheBoundFitsTheKernelsLimit()
    {
        Assert.Throws<ArgumentException>(() => FlowFilter.Program([.. Enumerable.Range(0, FlowFilter.MaxPortWords + 1).Select(i => (uint)i)]));
        Assert.True(FlowFilter.Program([.. Enumerable.Range(0, FlowFilter.MaxPortWords).Select(i => (uint)i)]).Length <= 4096);
    }

    /// <summary>A classic BPF interpreter for the instructions the program uses (Documentation/networking/filter.rst).</summary>
    private static uint Run(ulong[] program, byte[] packet, bool v6, ushort? protocol = null)
    {
        uint a = 0, x = 0;
        for (var pc = 0; pc < program.Length; pc++)
        {
            var insn = program[pc];
            var (code, jt, jf, k) = ((ushort)insn, (byte)(insn >> 16), (byte)(insn >> 24), (uint)(insn >> 32));
            switch (code)
            {
                case 0x28 when k == 0xFFFFF000: a = protocol ?? (v6 ? 0x86DDu : 0x0800u); break;
                case 0x30: a = packet[k]; break;
                case 0xB1: x = (uint)(packet[k] & 0x0F) * 4; break;
                case 0x01: x = k; break;
                case 0x40: a = BinaryPrimitives.ReadUInt32BigEndian(packet.AsSpan((int)(x + k))); break;
                case 0x05: pc += (int)k; break;
                case 0x15: pc += a == k ? jt : jf; break;
                case 0x06: return k;
                default: throw new InvalidOperationException($"instruction 0x{code:x} at {pc} not interpreted");
            }
        }

        throw new InvalidOperationException("the program ran off its end");
    }
}
