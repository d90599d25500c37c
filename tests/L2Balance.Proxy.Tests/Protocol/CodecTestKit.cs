using System.Buffers;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Protocol;

/// <summary>The shape every stream-codec TryParse shares, so one kit checks them all.</summary>
internal delegate ParseStatus SequenceParser<T>(in ReadOnlySequence<byte> input, out T value, out int consumed, out SocksRejection reason);

/// <summary>A segment of a hand-built multi-segment sequence.</summary>
internal sealed class ByteSegment : ReadOnlySequenceSegment<byte>
{
    public ByteSegment(ReadOnlyMemory<byte> memory) => Memory = memory;

    public ByteSegment Append(ReadOnlyMemory<byte> memory)
    {
        var next = new ByteSegment(memory) { RunningIndex = RunningIndex + Memory.Length };
        Next = next;
        return next;
    }
}

internal static class Wire
{
    /// <summary>"05 01 00" → bytes; spaces are ignored.</summary>
    public static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    public static string ToHex(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes);

    public static byte[] Ascii(string text) => System.Text.Encoding.ASCII.GetBytes(text);

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>The same bytes, one byte per segment, with an empty segment first and last (the
    /// shapes a Pipe can hand out).</summary>
    public static ReadOnlySequence<byte> OnePerSegment(byte[] bytes)
    {
        var first = new ByteSegment(ReadOnlyMemory<byte>.Empty);
        ByteSegment last = first;
        for (int i = 0; i < bytes.Length; i++)
        {
            last = last.Append(bytes.AsMemory(i, 1));
        }

        last = last.Append(ReadOnlyMemory<byte>.Empty);
        return new ReadOnlySequence<byte>(first, 0, last, 0);
    }

    public static byte[] Write(Action<IBufferWriter<byte>> write)
    {
        var writer = new ArrayBufferWriter<byte>();
        write(writer);
        return writer.WrittenSpan.ToArray();
    }
}

/// <summary>The docs/conventions.md §24 checks, shared by every codec test class.</summary>
internal static class CodecAssert
{
    private static readonly byte[] Trailer = [0x05, 0x00, 0xAA];

    /// <summary>
    /// <paramref name="wire"/> is exactly one message equal to <paramref name="expected"/>: Ok in one
    /// segment and one byte per segment, trailing bytes not consumed, every strict prefix NeedMoreData.
    /// </summary>
    public static void Parses<T>(SequenceParser<T> parse, byte[] wire, T expected)
    {
        foreach (ReadOnlySequence<byte> input in Shapes(wire).Concat(Shapes(Wire.Concat(wire, Trailer))))
        {
            ParseStatus status = parse(input, out T value, out int consumed, out SocksRejection reason);
            Assert.Equal(ParseStatus.Ok, status);
            Assert.Equal(SocksRejection.None, reason);
            Assert.Equal(wire.Length, consumed);
            Assert.Equal(expected, value);
        }

        for (int length = 0; length < wire.Length; length++)
        {
            foreach (ReadOnlySequence<byte> input in Shapes(wire[..length]))
            {
                ParseStatus status = parse(input, out _, out int consumed, out SocksRejection reason);
                Assert.True(status == ParseStatus.NeedMoreData, $"prefix of {length}/{wire.Length} bytes gave {status} ({reason})");
                Assert.Equal(0, consumed);
                Assert.Equal(SocksRejection.None, reason);
            }
        }
    }

    /// <summary>Writes <paramref name="value"/>, optionally compares with RFC bytes, then <see cref="Parses"/>.</summary>
    public static byte[] RoundTrips<T>(SequenceParser<T> parse, Action<T, IBufferWriter<byte>> write, T value, string? expectedHex = null)
    {
        byte[] wire = Wire.Write(w => write(value, w));
        if (expectedHex is not null)
        {
            Assert.Equal(Wire.ToHex(Wire.Hex(expectedHex)), Wire.ToHex(wire));
        }

        Parses(parse, wire, value);
        return wire;
    }

    /// <summary>Invalid with exactly <paramref name="expected"/>, nothing consumed, whatever the segmentation or what follows.</summary>
    public static void Rejects<T>(SequenceParser<T> parse, byte[] wire, SocksRejection expected)
    {
        foreach (ReadOnlySequence<byte> input in Shapes(wire).Concat(Shapes(Wire.Concat(wire, Trailer))))
        {
            ParseStatus status = parse(input, out _, out int consumed, out SocksRejection reason);
            Assert.Equal(ParseStatus.Invalid, status);
            Assert.Equal(expected, reason);
            Assert.Equal(0, consumed);
        }
    }

    /// <summary>
    /// Seeded garbage: pure random bytes, valid prefixes followed by random bytes, and mutated valid
    /// messages. Nothing throws; status, consumed and reason are consistent; one-per-segment input
    /// gives the same answer; an Ok message re-parses from exactly its consumed bytes and, written
    /// back, parses to the same value.
    /// </summary>
    public static void SurvivesGarbage<T>(SequenceParser<T> parse, Action<T, IBufferWriter<byte>> write, byte[][] templates, int seed, int count = 20_000)
    {
        var random = new Random(seed);
        var seen = new HashSet<(ParseStatus, SocksRejection)>();
        for (int i = 0; i < count; i++)
        {
            byte[] input = Garbage(random, templates, i);
            ParseStatus status = parse(new ReadOnlySequence<byte>(input), out T value, out int consumed, out SocksRejection reason);
            seen.Add((status, reason));
            Consistent(status, consumed, reason, input.Length);
            if (status == ParseStatus.Ok)
            {
                Assert.Equal(ParseStatus.Ok, parse(new ReadOnlySequence<byte>(input, 0, consumed), out T again, out int consumedAgain, out _));
                Assert.Equal(consumed, consumedAgain);
                Assert.Equal(value, again);
                byte[] rewritten = Wire.Write(w => write(value, w));
                Assert.Equal(ParseStatus.Ok, parse(new ReadOnlySequence<byte>(rewritten), out T canonical, out int rewrittenConsumed, out _));
                Assert.Equal(rewritten.Length, rewrittenConsumed);
                Assert.Equal(value, canonical);
            }

            ParseStatus splitStatus = parse(Wire.OnePerSegment(input), out T splitValue, out int splitConsumed, out SocksRejection splitReason);
            Assert.Equal((status, consumed, reason), (splitStatus, splitConsumed, splitReason));
            Assert.Equal(value, splitValue);
        }

        // The generator must reach all three outcomes, or the run proves little.
        Assert.Contains(seen, s => s.Item1 == ParseStatus.Ok);
        Assert.Contains(seen, s => s.Item1 == ParseStatus.NeedMoreData);
        Assert.Contains(seen, s => s.Item1 == ParseStatus.Invalid);
    }

    /// <summary>
    /// One parse's outcome agrees with itself: Ok consumed 1..<paramref name="length"/> bytes and no
    /// reason, NeedMoreData nothing, Invalid nothing and a defined reason.
    /// </summary>
    public static void Consistent(ParseStatus status, int consumed, SocksRejection reason, int length)
    {
        switch (status)
        {
            case ParseStatus.Ok:
                Assert.InRange(consumed, 1, length);
                Assert.Equal(SocksRejection.None, reason);
                break;
            case ParseStatus.NeedMoreData:
                Assert.Equal((0, SocksRejection.None), (consumed, reason));
                break;
            case ParseStatus.Invalid:
                Assert.Equal(0, consumed);
                Assert.NotEqual(SocksRejection.None, reason);
                Assert.True(Enum.IsDefined(reason), $"undefined reason {reason}");
                break;
            default:
                Assert.Fail($"undefined status {status}");
                break;
        }
    }

    /// <summary>Input number <paramref name="i"/> of a garbage run (length 0..300 for pure noise).</summary>
    public static byte[] Garbage(Random random, byte[][] templates, int i)
    {
        byte[] template = templates[random.Next(templates.Length)];
        switch (i % 3)
        {
            case 0:
            {
                var bytes = new byte[random.Next(0, 301)];
                random.NextBytes(bytes);
                return bytes;
            }

            case 1:
            {
                int keep = random.Next(0, template.Length + 1);
                var bytes = new byte[keep + random.Next(0, 301 - Math.Min(keep, 300))];
                random.NextBytes(bytes);
                template.AsSpan(0, keep).CopyTo(bytes);
                return bytes;
            }

            default:
            {
                byte[] bytes = (byte[])template.Clone();
                for (int m = random.Next(1, 4); m > 0 && bytes.Length > 0; m--)
                {
                    bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                }

                return bytes[..random.Next(0, bytes.Length + 1)];
            }
        }
    }

    private static IEnumerable<ReadOnlySequence<byte>> Shapes(byte[] bytes) =>
        [new ReadOnlySequence<byte>(bytes), Wire.OnePerSegment(bytes)];
}

/// <summary>Seeded random values for property-style round trips.</summary>
internal static class RandomValues
{
    public static SocksEndpoint Endpoint(Random random)
    {
        var port = (ushort)random.Next(0, 65536);
        switch (random.Next(3))
        {
            case 0:
                return SocksEndpoint.FromAddress(new System.Net.IPAddress(Bytes(random, 4)), port);
            case 1:
                byte[] v6 = Bytes(random, 16);
                v6[0] = 0x20; // keep clear of the IPv4-mapped prefix, which canonicalises to IPv4
                return SocksEndpoint.FromAddress(new System.Net.IPAddress(v6), port);
            default:
                return SocksEndpoint.FromHost(Host(random, random.Next(1, 256)), port);
        }
    }

    /// <summary>A name of <paramref name="length"/> printable ASCII characters (0x21..0x7E).</summary>
    public static string Host(Random random, int length) =>
        string.Create(length, random, static (span, r) =>
        {
            for (int i = 0; i < span.Length; i++)
            {
                span[i] = (char)r.Next(0x21, 0x7F);
            }
        });

    public static byte[] Bytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }
}
