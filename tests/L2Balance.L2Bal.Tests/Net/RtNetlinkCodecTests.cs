using System.Buffers.Binary;
using System.Net;
using L2Balance.Balancer.Net;
using Xunit;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.L2Bal.Tests.Net;

public sealed class RtNetlinkCodecTests
{
    private static readonly IPAddress Vip = IPAddress.Parse("198.18.0.10");

    [Fact]
    public void NewAddr_Written_HasExactLayout()
    {
        var buffer = new byte[64];
        int n = RtNetlinkCodec.WriteAddressRequest(buffer, RTM_NEWADDR, sequence: 0x01020304, interfaceIndex: 1, Vip, 32);

        byte[] expected =
        [
            // nlmsghdr: len 40, type 20, flags REQUEST|ACK|EXCL|CREATE = 0x0605, seq, pid 0
            40, 0, 0, 0, 20, 0, 0x05, 0x06, 0x04, 0x03, 0x02, 0x01, 0, 0, 0, 0,
            // ifaddrmsg: AF_INET, /32, flags 0, scope universe, ifindex 1
            2, 32, 0, 0, 1, 0, 0, 0,
            // rtattr IFA_LOCAL: len 8, type 2, 198.18.0.10
            8, 0, 2, 0, 198, 18, 0, 10,
            // rtattr IFA_ADDRESS: len 8, type 1, 198.18.0.10
            8, 0, 1, 0, 198, 18, 0, 10,
        ];
        Assert.Equal(RtNetlinkCodec.AddressRequestLength, n);
        Assert.Equal(expected, buffer[..n]);
    }

    [Fact]
    public void DelAddr_Written_HasNoCreateFlags()
    {
        var buffer = new byte[RtNetlinkCodec.AddressRequestLength];
        RtNetlinkCodec.WriteAddressRequest(buffer, RTM_DELADDR, 7, 3, Vip, 32);

        Assert.Equal(RTM_DELADDR, BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(4)));
        Assert.Equal(NLM_F_REQUEST | NLM_F_ACK, BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(6)));
        Assert.Equal(3, BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(20)));
    }

    [Fact]
    public void NewAddr_IPv6_IsSixteenByteAttributesWithNoDad()
    {
        var buffer = new byte[RtNetlinkCodec.AddressRequestLength6];
        int n = RtNetlinkCodec.WriteAddressRequest(buffer, RTM_NEWADDR, 0x01020304, 1, IPAddress.Parse("fdc6:1200:10::a"), 128);
        byte[] address = [0xfd, 0xc6, 0x12, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a];
        byte[] expected =
        [
            // nlmsghdr: len 64, type 20, flags REQUEST|ACK|EXCL|CREATE, seq, pid 0
            64, 0, 0, 0, 20, 0, 0x05, 0x06, 0x04, 0x03, 0x02, 0x01, 0, 0, 0, 0,
            // ifaddrmsg: AF_INET6, /128, IFA_F_NODAD, scope universe, ifindex 1
            10, 128, 0x02, 0, 1, 0, 0, 0,
            // rtattr IFA_LOCAL then IFA_ADDRESS: len 20
            20, 0, 2, 0, .. address,
            20, 0, 1, 0, .. address,
        ];
        Assert.Equal(RtNetlinkCodec.AddressRequestLength6, n);
        Assert.Equal(expected, buffer[..n]);
    }

    [Fact]
    public void Request_BadTypeOrPrefixOrSmallBuffer_IsRefused()
    {
        var buffer = new byte[RtNetlinkCodec.AddressRequestLength];
        Assert.Throws<ArgumentException>(() => RtNetlinkCodec.WriteAddressRequest(buffer, RTM_NEWADDR, 1, 1, IPAddress.Parse("fdc6::1"), 128));
        Assert.Throws<ArgumentOutOfRangeException>(() => RtNetlinkCodec.WriteAddressRequest(new byte[64], RTM_NEWADDR, 1, 1, IPAddress.Parse("fdc6::1"), 129));
        Assert.Throws<ArgumentOutOfRangeException>(() => RtNetlinkCodec.WriteAddressRequest(buffer, 99, 1, 1, Vip, 32));
        Assert.Throws<ArgumentOutOfRangeException>(() => RtNetlinkCodec.WriteAddressRequest(buffer, RTM_NEWADDR, 1, 1, Vip, 33));
        Assert.Throws<ArgumentOutOfRangeException>(() => RtNetlinkCodec.WriteAddressRequest(buffer, RTM_NEWADDR, 1, 0, Vip, 32));
        Assert.Throws<ArgumentException>(() => RtNetlinkCodec.WriteAddressRequest(new byte[39], RTM_NEWADDR, 1, 1, Vip, 32));
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 4)]
    [InlineData(4, 4)]
    [InlineData(5, 8)]
    [InlineData(36, 36)]
    [InlineData(37, 40)]
    public void Align_AnyLength_RoundsUpToFour(int length, int aligned)
    {
        Assert.Equal(aligned, RtNetlinkCodec.Align(length));
    }

    [Theory]
    [InlineData(0, (int)NetlinkAckStatus.Ok, 0)]
    [InlineData(-17, (int)NetlinkAckStatus.Error, 17)]
    [InlineData(-1, (int)NetlinkAckStatus.Error, 1)]
    [InlineData(5, (int)NetlinkAckStatus.Invalid, 0)]
    public void Ack_WithErrno_DecodesIt(int error, int statusValue, int errno)
    {
        var status = (NetlinkAckStatus)statusValue;
        var ack = Ack(seq: 42, error);

        Assert.Equal(status, RtNetlinkCodec.TryReadAck(ack, 42, out int got, out int consumed));
        Assert.Equal(errno, got);
        Assert.Equal(ack.Length, consumed);
    }

    [Fact]
    public void Ack_OtherSequenceOrType_IsASteppableOtherMessage()
    {
        var other = Ack(seq: 41, 0);
        var notError = Ack(seq: 42, 0);
        notError[4] = (byte)NLMSG_DONE;
        var both = other.Concat(notError).Concat(Ack(42, -1)).ToArray();

        Assert.Equal(NetlinkAckStatus.OtherMessage, RtNetlinkCodec.TryReadAck(both, 42, out _, out int c1));
        Assert.Equal(NetlinkAckStatus.OtherMessage, RtNetlinkCodec.TryReadAck(both.AsSpan(c1), 42, out _, out int c2));
        Assert.Equal(NetlinkAckStatus.Error, RtNetlinkCodec.TryReadAck(both.AsSpan(c1 + c2), 42, out int errno, out _));
        Assert.Equal(1, errno);
    }

    [Fact]
    public void Ack_Truncated_IsInvalid()
    {
        var ack = Ack(42, 0);
        for (int len = 0; len < ack.Length; len++)
        {
            Assert.Equal(NetlinkAckStatus.Invalid, RtNetlinkCodec.TryReadAck(ack.AsSpan(0, len), 42, out _, out _));
        }

        // A length field below the header size, and an ack too short to carry the error.
        var tiny = (byte[])ack.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(tiny, 8);
        Assert.Equal(NetlinkAckStatus.Invalid, RtNetlinkCodec.TryReadAck(tiny, 42, out _, out _));
        var headerOnly = ack[..NLMSG_HDRLEN];
        BinaryPrimitives.WriteUInt32LittleEndian(headerOnly, NLMSG_HDRLEN);
        Assert.Equal(NetlinkAckStatus.Invalid, RtNetlinkCodec.TryReadAck(headerOnly, 42, out _, out _));
    }

    /// <summary>nlmsghdr(NLMSG_ERROR) + nlmsgerr { int error; struct nlmsghdr msg; } (the echoed request's header only, as with NETLINK_CAP_ACK).</summary>
    private static byte[] Ack(uint seq, int error)
    {
        var b = new byte[NLMSG_HDRLEN + 4 + NLMSG_HDRLEN];
        BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)b.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(4), NLMSG_ERROR);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), seq);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(NLMSG_HDRLEN), error);
        return b;
    }
}
