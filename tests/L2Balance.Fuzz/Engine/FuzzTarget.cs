using System.Runtime.CompilerServices;
using FsCheck;

namespace L2Balance.Fuzz.Engine;

/// <summary>
/// One parser under fuzzing: its valid seeds, an optional FsCheck generator of valid-shaped
/// messages, a dictionary of tokens for mutation, and how one input is run and checked.
/// </summary>
public abstract class FuzzTarget
{
    /// <summary>The target's name on the command line (<c>lab/fuzz socks5-request</c>).</summary>
    public abstract string Name { get; }

    /// <summary>The group it belongs to: <c>proxy</c>, <c>l2bal</c>, or <c>common</c> (run with either).</summary>
    public abstract string Product { get; }

    /// <summary>The entry point under test, for reports.</summary>
    public abstract string EntryPoint { get; }

    /// <summary>Valid inputs the mutations start from.</summary>
    public abstract IReadOnlyList<byte[]> Seeds { get; }

    /// <summary>Valid-shaped messages, or null where no generator fits better than the seeds.</summary>
    public virtual Gen<byte[]>? Generator => null;

    /// <summary>Words the mutator inserts (keywords, separators): reach a text parser's deeper states.</summary>
    public virtual IReadOnlyList<byte[]> Tokens => [];

    /// <summary>Longest input tried: past the parser's own limits, so those are exercised too.</summary>
    public virtual int MaxInputLength => 1024;

    /// <summary>
    /// The most one input may allocate while parsing: a fixed part and a part proportional to its
    /// length. More is counted as unbounded allocation.
    /// </summary>
    public virtual long AllocationBound(int length) => 4096 + (64L * length);

    /// <summary>A last step after mutation: the advert target signs the mutated payload here.</summary>
    public virtual byte[] Finish(byte[] input, ref FuzzRandom random) => input;

    /// <summary>
    /// Runs the parser on <paramref name="input"/>; returns what it measured. Throws
    /// <see cref="FuzzPropertyException"/> when a property fails, and whatever the parser throws.
    /// </summary>
    public abstract Outcome Run(byte[] input, ref FuzzRandom random);

    /// <summary>Whether an exception is the parser's documented way of refusing input (not a crash).</summary>
    public virtual bool IsDocumentedRejection(Exception exception) => false;

    /// <summary>What one input did: accepted as valid, and the bytes the parse allocated.</summary>
    public readonly record struct Outcome(bool Accepted, long Allocated);
}

/// <summary>
/// A target whose input is first converted outside the measurement (text decoded, a sequence split
/// into segments), then parsed (measured: allocation), then checked (round trip, contracts).
/// </summary>
public abstract class FuzzTarget<TInput, TResult> : FuzzTarget
{
    public sealed override Outcome Run(byte[] input, ref FuzzRandom random)
    {
        TInput converted = Convert(input, ref random);
        long before = GC.GetAllocatedBytesForCurrentThread();
        TResult result = Parse(converted);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        try
        {
            Check(input, result);
        }
        catch (Exception e) when (e is not FuzzPropertyException)
        {
            throw new FuzzPropertyException($"checking the result threw {e}", e);
        }

        return new Outcome(IsAccepted(result), allocated);
    }

    /// <summary>The parser's input from the bytes (not measured).</summary>
    protected abstract TInput Convert(byte[] input, ref FuzzRandom random);

    /// <summary>The call of the parser's public entry point, and nothing else.</summary>
    protected abstract TResult Parse(TInput input);

    /// <summary>Properties of the result: the documented contract and, where a writer exists, the round trip.</summary>
    protected virtual void Check(byte[] input, TResult result)
    {
    }

    /// <summary>Whether the parser accepted the input as valid (reported: how deep the inputs reach).</summary>
    protected abstract bool IsAccepted(TResult result);

    /// <summary>Fails the property with <paramref name="message"/> unless <paramref name="condition"/> holds.</summary>
    protected static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new FuzzPropertyException(message);
        }
    }

    /// <summary>As above, formatting the message only when the property fails (it runs for every input).</summary>
    protected static void Require(bool condition, [InterpolatedStringHandlerArgument(nameof(condition))] ref FailureMessage message)
    {
        if (!condition)
        {
            throw new FuzzPropertyException(message.ToStringAndClear());
        }
    }
}

/// <summary>A property of a parser that does not hold for an input (a decision change, a broken contract).</summary>
public sealed class FuzzPropertyException : Exception
{
    public FuzzPropertyException(string message)
        : base(message)
    {
    }

    public FuzzPropertyException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public FuzzPropertyException()
    {
    }
}

/// <summary>A message built only when its condition is false (as Debug.Assert's handler).</summary>
[InterpolatedStringHandler]
public ref struct FailureMessage
{
    private DefaultInterpolatedStringHandler _text;

    public FailureMessage(int literalLength, int formattedCount, bool condition, out bool shouldAppend)
    {
        shouldAppend = !condition;
        _text = shouldAppend ? new DefaultInterpolatedStringHandler(literalLength, formattedCount) : default;
    }

    public void AppendLiteral(string value) => _text.AppendLiteral(value);

    public void AppendFormatted<T>(T value) => _text.AppendFormatted(value);

    public string ToStringAndClear() => _text.ToStringAndClear();
}
