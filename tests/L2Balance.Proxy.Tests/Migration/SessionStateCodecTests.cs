using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using L2Balance.Proxy.Migration;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Migration;

public sealed class SessionStateCodecTests
{
    /// <summary>The outbound flags from the end: the flags byte, then IPv4 7, IPv6 19, method 1, user 1 + 7 ("jürgen" in UTF-8).</summary>
    private const int OutboundFlagsFromEnd = 1 + 7 + 19 + 1 + 1 + 7;

    public static TcpLegState Leg(string local, string remote, int sendQueue = 5, int unsent = 2, int receiveQueue = 3) => new(
        IPEndPoint.Parse(local),
        IPEndPoint.Parse(remote),
        0xFFFF_FFF0,
        12345,
        [.. Enumerable.Range(0, sendQueue).Select(i => (byte)i)],
        unsent,
        [.. Enumerable.Range(0, receiveQueue).Select(i => (byte)(200 + i))],
        1448,
        TcpLegOptions.Sack | TcpLegOptions.Timestamps | TcpLegOptions.WindowScale,
        7,
        9,
        0xDEADBEEF,
        new TcpLegWindow(1, 2, 3, 4, 5));

    public static SessionState Relay() => new(
        SessionKind.TcpRelay,
        [Leg("198.18.0.100:1080", "198.18.0.10:40000"), Leg("198.18.0.100:50000", "198.18.1.5:9000", 0, 0, 0)],
        [1, 2, 3],
        [],
        null);

    public static SessionState Udp() => new(
        SessionKind.UdpAssociation,
        [Leg("[fd00:5eed::100]:1080", "[fd00:5eed::10]:40000")],
        [],
        [9],
        new UdpAssociationState(IPEndPoint.Parse("[fd00:5eed::10]:5353"), IPEndPoint.Parse("[fd00:5eed::100]:41000")));

    public static byte[] Encode(SessionState state)
    {
        var writer = new ArrayBufferWriter<byte>();
        SessionStateCodec.Write(state, writer);
        return writer.WrittenSpan.ToArray();
    }

    [Fact]
    public void Relay_WrittenAndParsed_RoundTripsEveryField() => AssertRoundTrip(Relay());

    [Fact]
    public void UdpAssociation_IPv6_RoundTripsEveryField() => AssertRoundTrip(Udp());

    /// <summary>A CONNECT relay on the IPv6 VIP (single-IP mode over IPv6): both legs IPv6.</summary>
    public static SessionState Relay6() => new(
        SessionKind.TcpRelay,
        [Leg("[fdc6:1200:10::a]:1080", "[fdc6:1200:64::7]:40000"), Leg("[fdc6:1200:10::a]:33001", "[fdc6:1200:20::7]:9000", 0, 0, 0)],
        [1, 2, 3],
        [4],
        null);

    [Fact]
    public void Relay_IPv6Legs_RoundTripsEveryField() => AssertRoundTrip(Relay6());

    [Fact]
    public void Relay_IPv6EveryPrefix_IsTruncated()
    {
        var bytes = Encode(Relay6());
        for (int length = 0; length < bytes.Length; length++)
        {
            Assert.Equal(SessionStateRejection.Truncated, SessionStateCodec.TryParse(bytes.AsSpan(0, length), out _, out var reason) == ParseStatus.Invalid ? reason : SessionStateRejection.None);
        }
    }

    /// <summary>A relay of two IPv6 legs: a 7-byte header, then the first leg's local endpoint (family byte at 7) and remote (family byte at 7 + 19).</summary>
    [Theory]
    [InlineData(7, "09", SessionStateRejection.BadAddressFamily)]
    [InlineData(26, "04", SessionStateRejection.MixedAddressFamilies)]
    public void Relay_IPv6FamilyByteChanged_IsRefusedWithItsReason(int offset, string hex, SessionStateRejection expected)
    {
        var bytes = Encode(Relay6());
        Convert.FromHexString(hex).CopyTo(bytes, offset);
        AssertRefused(bytes, expected);
    }

    [Fact]
    public void Write_Relay_LengthMatchesGetLength()
    {
        Assert.Equal(SessionStateCodec.GetLength(Relay()), Encode(Relay()).Length);
        Assert.Equal("L2MS"u8.ToArray(), Encode(Relay())[..4]);
    }

    [Fact]
    public void EveryPrefix_OfAValidState_IsTruncated()
    {
        var bytes = Encode(Udp());
        for (int length = 0; length < bytes.Length; length++)
        {
            Assert.Equal(ParseStatus.Invalid, SessionStateCodec.TryParse(bytes.AsSpan(0, length), out var state, out var reason));
            Assert.Null(state);
            Assert.Equal(SessionStateRejection.Truncated, reason);
        }
    }

    [Fact]
    public void TrailingByte_AfterAValidState_IsRefused() =>
        AssertRefused([.. Encode(Relay()), 0], SessionStateRejection.TrailingBytes);

    /// <summary>Offsets in a relay of two IPv4 legs: a 7-byte header, two 7-byte endpoints, then the first leg's fields from 21.</summary>
    [Theory]
    [InlineData(0, "58", SessionStateRejection.BadMagic)]
    [InlineData(4, "02", SessionStateRejection.UnsupportedVersion)]
    [InlineData(5, "03", SessionStateRejection.UnknownKind)]
    [InlineData(6, "01", SessionStateRejection.BadLegCount)]
    [InlineData(7, "05", SessionStateRejection.BadAddressFamily)]
    [InlineData(14, "06", SessionStateRejection.MixedAddressFamilies)]
    [InlineData(29, "0000", SessionStateRejection.BadMss)]
    [InlineData(31, "08", SessionStateRejection.UnknownOptions)]
    [InlineData(32, "0F", SessionStateRejection.BadWindowScale)]
    [InlineData(33, "0F", SessionStateRejection.BadWindowScale)]
    public void Field_OutOfRange_IsRefusedWithItsReason(int offset, string hex, SessionStateRejection expected)
    {
        var bytes = Encode(Relay());
        Convert.FromHexString(hex).CopyTo(bytes, offset);
        AssertRefused(bytes, expected);
    }

    [Fact]
    public void Unsent_BeyondTheSendQueue_IsRefused()
    {
        var bytes = Encode(Relay());
        int unsent = 7 + 14 + 4 + 4 + 2 + 3 + 4 + 20;
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(unsent), 6);
        AssertRefused(bytes, SessionStateRejection.UnsentBeyondQueue);
    }

    [Fact]
    public void QueueLength_AboveTheLimit_IsRefusedBeforeAllocating()
    {
        var bytes = Encode(Relay());
        int sendQueue = 7 + 14 + 4 + 4 + 2 + 3 + 4 + 20 + 4;
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(sendQueue), SessionStateCodec.MaxQueueLength + 1u);
        AssertRefused(bytes, SessionStateRejection.QueueTooLong);
    }

    /// <summary>An IPv4 association as a single-IP node moves it: both target-facing sockets, RFC 1929 method and a non-ASCII user.</summary>
    public static SessionState UdpWithOutbound() => new(
        SessionKind.UdpAssociation,
        [Leg("198.18.0.100:1080", "198.18.0.10:40000", 0, 0, 4)],
        [],
        [],
        new UdpAssociationState(IPEndPoint.Parse("198.18.0.10:5353"), IPEndPoint.Parse("198.18.0.100:41000"),
            IPEndPoint.Parse("198.18.0.100:41001"), IPEndPoint.Parse("[fdc6:1200::100]:41002"), 0x02, "jürgen"));

    [Fact]
    public void UdpAssociation_WithOutboundSocketsMethodAndUser_RoundTripsEveryField() => AssertRoundTrip(UdpWithOutbound());

    [Fact]
    public void UdpAssociation_EveryPrefix_IsTruncated()
    {
        var bytes = Encode(UdpWithOutbound());
        Assert.Equal(SessionStateCodec.GetLength(UdpWithOutbound()), bytes.Length);
        for (int length = 0; length < bytes.Length; length++)
        {
            Assert.Equal(ParseStatus.Invalid, SessionStateCodec.TryParse(bytes.AsSpan(0, length), out _, out var reason));
            Assert.Equal(SessionStateRejection.Truncated, reason);
        }
    }

    [Theory]
    [InlineData(0x04)]
    [InlineData(0x80)]
    public void UdpOutboundFlags_Unknown_AreRefused(byte flags)
    {
        var bytes = Encode(UdpWithOutbound());
        bytes[^OutboundFlagsFromEnd] = flags;
        AssertRefused(bytes, SessionStateRejection.BadUdpOutbound);
    }

    [Fact]
    public void UdpOutbound_IPv6EndpointInTheIPv4Slot_IsRefused()
    {
        var state = UdpWithOutbound();
        var bytes = Encode(state with { Udp = state.Udp!.Value with { Outbound4 = null } });
        // Flags 2 (IPv6 only) become 1: the IPv6 endpoint now stands in the IPv4 slot.
        bytes[^(1 + 19 + 1 + 1 + 7)] = 1;
        AssertRefused(bytes, SessionStateRejection.BadUdpOutbound);
    }

    [Fact]
    public void UdpUser_NotUtf8_IsRefused()
    {
        var bytes = Encode(UdpWithOutbound());
        bytes[^1] = 0xFF;
        AssertRefused(bytes, SessionStateRejection.BadUserName);
    }

    [Fact]
    public void UdpUser_LongerThanRfc1929Allows_IsNotWritten()
    {
        var state = UdpWithOutbound();
        var tooLong = state with { Udp = state.Udp!.Value with { User = new string('u', UdpAssociationState.MaxUserLength + 1) } };
        Assert.Throws<ArgumentException>(() => Encode(tooLong));
    }

    [Fact]
    public void UdpFlag_OnARelay_IsRefused()
    {
        var bytes = Encode(Relay());
        bytes[^1] = 1;
        AssertRefused(bytes, SessionStateRejection.BadUdpFlag);
    }

    private static void AssertRefused(byte[] bytes, SessionStateRejection expected)
    {
        Assert.Equal(ParseStatus.Invalid, SessionStateCodec.TryParse(bytes, out var state, out var reason));
        Assert.Equal(expected, reason);
        Assert.Null(state);
    }

    private static void AssertRoundTrip(SessionState original)
    {
        var bytes = Encode(original);
        Assert.Equal(ParseStatus.Ok, SessionStateCodec.TryParse(bytes, out var parsed, out var reason));
        Assert.Equal(SessionStateRejection.None, reason);
        Assert.NotNull(parsed);
        Assert.Equal(original.Kind, parsed.Kind);
        Assert.Equal(original.Udp, parsed.Udp);
        Assert.Equal(original.HeldToTarget, parsed.HeldToTarget);
        Assert.Equal(original.HeldToClient, parsed.HeldToClient);
        Assert.Equal(original.Legs.Count, parsed.Legs.Count);
        for (int i = 0; i < original.Legs.Count; i++)
        {
            var (a, b) = (original.Legs[i], parsed.Legs[i]);
            Assert.Equal(a.SendQueue, b.SendQueue);
            Assert.Equal(a.ReceiveQueue, b.ReceiveQueue);
            Assert.Equal(a with { SendQueue = [], ReceiveQueue = [] }, b with { SendQueue = [], ReceiveQueue = [] });
        }

        Assert.Equal(bytes, Encode(parsed));
    }
}
