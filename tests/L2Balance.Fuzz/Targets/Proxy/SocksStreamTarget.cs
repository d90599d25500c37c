using System.Buffers;
using L2Balance.Fuzz.Engine;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Fuzz.Targets.Proxy;

/// <summary>One parse of a SOCKS stream codec: what docs/conventions.md §5 says a TryParse returns.</summary>
public readonly record struct Parsed<T>(ParseStatus Status, T Value, int Consumed, SocksRejection Reason);

/// <summary>
/// A SOCKS request codec fed from a stream (the bytes split into segments as a socket delivers
/// them). Checks the codec's contract (consumed only on Ok, a reason on Invalid), that the split
/// bytes parse as the whole bytes do, and, for an accepted message, that writing it back gives the
/// canonical bytes and parses to the same message.
/// </summary>
public abstract class SocksStreamTarget<T> : FuzzTarget<ReadOnlySequence<byte>, Parsed<T>>
{
    public override string Product => "proxy";

    public override int MaxInputLength => 600;

    protected abstract ParseStatus TryParse(in ReadOnlySequence<byte> input, out T value, out int consumed, out SocksRejection reason);

    protected abstract void Write(T value, IBufferWriter<byte> output);

    /// <summary>The bytes the writer gives for <paramref name="message"/>: itself, unless a field has several spellings.</summary>
    protected virtual byte[] Canonical(byte[] message) => message;

    protected override ReadOnlySequence<byte> Convert(byte[] input, ref FuzzRandom random) => Segments.Split(input, ref random);

    protected override Parsed<T> Parse(ReadOnlySequence<byte> input)
    {
        var status = TryParse(input, out var value, out int consumed, out var reason);
        return new Parsed<T>(status, value, consumed, reason);
    }

    protected override bool IsAccepted(Parsed<T> result) => result.Status == ParseStatus.Ok;

    protected override void Check(byte[] input, Parsed<T> result)
    {
        Require(result.Status == ParseStatus.Ok ? result.Consumed > 0 && result.Consumed <= input.Length : result.Consumed == 0,
            $"{result.Status} consumed {result.Consumed} of {input.Length} bytes");
        Require(result.Status != ParseStatus.Invalid || result.Reason != SocksRejection.None, "Invalid without a reason");
        var whole = Parse(new ReadOnlySequence<byte>(input));
        Require(whole == result, $"split into segments it gave {result}, whole {whole}");
        if (result.Status != ParseStatus.Ok)
        {
            return;
        }

        var writer = new ArrayBufferWriter<byte>();
        Write(result.Value, writer);
        byte[] written = writer.WrittenSpan.ToArray();
        byte[] canonical = Canonical(input[..result.Consumed]);
        Require(written.AsSpan().SequenceEqual(canonical), $"written back as {System.Convert.ToHexString(written)}, canonical {System.Convert.ToHexString(canonical)}");
        var again = Parse(new ReadOnlySequence<byte>(written));
        Require(again.Status == ParseStatus.Ok && again.Consumed == written.Length && EqualityComparer<T>.Default.Equals(again.Value, result.Value),
            $"the written message parsed as {again}, not {result.Value}");
    }
}
