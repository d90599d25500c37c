using System.Text;
using L2Balance.Fuzz.Engine;

namespace L2Balance.Fuzz.Targets;

/// <summary>
/// A parser of text (a configuration or users file): the bytes are decoded as UTF-8 as
/// <c>File.ReadAllText</c> would (invalid sequences become U+FFFD) before the measured parse.
/// Text parsers build strings, lists and error messages, so their allocation bound per byte is larger.
/// </summary>
public abstract class TextTarget<TResult> : FuzzTarget<string, TResult>
{
    public override int MaxInputLength => 8192;

    public override long AllocationBound(int length) => (64 * 1024) + (512L * length);

    protected static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    protected static string Decode(byte[] input) => Encoding.UTF8.GetString(input);

    protected override string Convert(byte[] input, ref FuzzRandom random) => Decode(input);

    /// <summary>A position an error names lies inside the text (line 0: the file as a whole).</summary>
    protected static void RequireLine(string text, int line, string what) =>
        Require(line >= 0 && line <= text.Count(c => c == '\n') + 1, $"{what} names line {line}, the text has {text.Count(c => c == '\n') + 1}");
}
