using System.Buffers;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Protocol;

/// <summary>
/// Properties of the request parsers over <see cref="SocksGen"/>'s messages: valid ones round trip,
/// malformed ones get their exact rejection, any bytes never throw, and a message split at every
/// position parses as it does whole. Runs stay small (100 cases each) to keep the suite fast.
/// </summary>
public sealed class SocksPropertyTests
{
    private const int Cases = 100;

    private static readonly SequenceParser<Socks5Request> ParseSocks5 = Socks5Codec.TryParseRequest;
    private static readonly SequenceParser<Socks4Request> ParseSocks4 = Socks4Codec.TryParseRequest;
    private static readonly SequenceParser<UserPassRequest> ParseUserPass = UserPassCodec.TryParseRequest;

    [Property(MaxTest = Cases)]
    public Property Socks5Request_AnyValidRequest_RoundTrips() =>
        Prop.ForAll(SocksGen.Socks5Request.ToArbitrary(), request =>
            AssertRoundTrips(ParseSocks5, (r, w) => Socks5Codec.WriteRequest(r, w), request));

    [Property(MaxTest = Cases)]
    public Property Socks4Request_AnyValidRequest_RoundTrips() =>
        Prop.ForAll(SocksGen.Socks4Request.ToArbitrary(), request =>
            AssertRoundTrips(ParseSocks4, (r, w) => Socks4Codec.WriteRequest(r, w), request));

    /// <summary>Names and passwords with control characters and newlines are still carried intact.</summary>
    [Property(MaxTest = Cases)]
    public Property UserPassRequest_AnyValidRequest_RoundTrips() =>
        Prop.ForAll(SocksGen.UserPassRequest.ToArbitrary(), request =>
            AssertRoundTrips(ParseUserPass, (r, w) => UserPassCodec.WriteRequest(r, w), request));

    [Property(MaxTest = Cases)]
    public Property Socks5Request_OneDefect_IsRejectedWithItsReason() =>
        Prop.ForAll(SocksGen.MalformedSocks5Request.ToArbitrary(), malformed => CodecAssert.Rejects(ParseSocks5, malformed.Wire, malformed.Reason));

    [Property(MaxTest = Cases)]
    public Property Socks4Request_OneDefect_IsRejectedWithItsReason() =>
        Prop.ForAll(SocksGen.MalformedSocks4Request.ToArbitrary(), malformed => CodecAssert.Rejects(ParseSocks4, malformed.Wire, malformed.Reason));

    [Property(MaxTest = Cases)]
    public Property UserPassRequest_OneDefect_IsRejectedWithItsReason() =>
        Prop.ForAll(SocksGen.MalformedUserPassRequest.ToArbitrary(), malformed => CodecAssert.Rejects(ParseUserPass, malformed.Wire, malformed.Reason));

    [Property(MaxTest = Cases)]
    public Property Socks5Request_AnyBytes_NeverThrowAndRejectWithAReason() =>
        Prop.ForAll(SocksGen.Garbage.ToArbitrary(), bytes => AssertConsistent(ParseSocks5, bytes));

    [Property(MaxTest = Cases)]
    public Property Socks4Request_AnyBytes_NeverThrowAndRejectWithAReason() =>
        Prop.ForAll(SocksGen.Garbage.ToArbitrary(), bytes => AssertConsistent(ParseSocks4, bytes));

    [Property(MaxTest = Cases)]
    public Property UserPassRequest_AnyBytes_NeverThrowAndRejectWithAReason() =>
        Prop.ForAll(SocksGen.Garbage.ToArbitrary(), bytes => AssertConsistent(ParseUserPass, bytes));

    [Property(MaxTest = Cases)]
    public Property Socks5Request_SplitAtEveryPosition_ParsesAsWhole() =>
        Prop.ForAll(AnyOf(SocksGen.Socks5RequestWire, SocksGen.MalformedSocks5Request), wire => AssertSplitsParseAsWhole(ParseSocks5, wire));

    [Property(MaxTest = Cases)]
    public Property Socks4Request_SplitAtEveryPosition_ParsesAsWhole() =>
        Prop.ForAll(AnyOf(SocksGen.Socks4RequestWire, SocksGen.MalformedSocks4Request), wire => AssertSplitsParseAsWhole(ParseSocks4, wire));

    [Property(MaxTest = Cases)]
    public Property UserPassRequest_SplitAtEveryPosition_ParsesAsWhole() =>
        Prop.ForAll(AnyOf(SocksGen.UserPassRequestWire, SocksGen.MalformedUserPassRequest), wire => AssertSplitsParseAsWhole(ParseUserPass, wire));

    /// <summary>Valid messages, malformed ones and either followed by a few bytes of garbage (a pipelined client).</summary>
    private static Arbitrary<byte[]> AnyOf(Gen<byte[]> valid, Gen<MalformedWire> malformed) =>
        Gen.OneOf(
                valid,
                malformed.Select(m => m.Wire),
                from message in Gen.OneOf(valid, malformed.Select(m => m.Wire))
                from tail in SocksGen.Garbage
                select (byte[])[.. message, .. tail.AsSpan(0, Math.Min(tail.Length, 16))])
            .ToArbitrary();

    /// <summary>
    /// Written, the value parses back whole, with the next message's bytes behind it too. Lighter
    /// than <see cref="CodecAssert.RoundTrips"/> (no prefix walk): the split property covers segments.
    /// </summary>
    private static void AssertRoundTrips<T>(SequenceParser<T> parse, Action<T, IBufferWriter<byte>> write, T value)
    {
        var wire = Wire.Write(w => write(value, w));
        foreach (var input in new[] { wire, [.. wire, 0x05, 0x01, 0x00] })
        {
            var status = parse(new ReadOnlySequence<byte>(input), out var parsed, out var consumed, out var reason);
            Assert.Equal((ParseStatus.Ok, wire.Length, SocksRejection.None), (status, consumed, reason));
            Assert.Equal(value, parsed);
        }
    }

    /// <summary>Nothing throws; status, consumed and reason agree; Invalid always names a defined reason.</summary>
    private static void AssertConsistent<T>(SequenceParser<T> parse, byte[] bytes)
    {
        var status = parse(new ReadOnlySequence<byte>(bytes), out _, out var consumed, out var reason);
        CodecAssert.Consistent(status, consumed, reason, bytes.Length);
    }

    /// <summary>Two segments split at each position give the same status, value, consumed and reason as one.</summary>
    private static void AssertSplitsParseAsWhole<T>(SequenceParser<T> parse, byte[] wire)
    {
        var whole = parse(new ReadOnlySequence<byte>(wire), out var value, out var consumed, out var reason);
        for (var at = 0; at <= wire.Length; at++)
        {
            var first = new ByteSegment(wire.AsMemory(0, at));
            var last = first.Append(wire.AsMemory(at));
            var split = parse(new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length), out var splitValue, out var splitConsumed, out var splitReason);
            Assert.True((whole, consumed, reason) == (split, splitConsumed, splitReason),
                $"split at {at} of {wire.Length}: {split}/{splitConsumed}/{splitReason}, whole: {whole}/{consumed}/{reason}");
            Assert.Equal(value, splitValue);
        }
    }
}
