using System.Text;
using L2Balance.Common.Logging;
using Xunit;

namespace L2Balance.Common.Tests.Logging;

public sealed class LogTextTests
{
    [Theory]
    [InlineData("alice", "alice")]
    [InlineData("www.example.com:443", "www.example.com:443")]
    [InlineData("émile", "émile")]
    [InlineData("", "")]
    public void Escape_PlainText_IsUnchanged(string text, string expected) => Assert.Equal(expected, LogText.Escape(text));

    [Theory]
    [InlineData("a\nb", @"a\nb")]
    [InlineData("a\r\nl2proxy[1]: info[16]: forged", @"a\r\nl2proxy[1]: info[16]: forged")]
    [InlineData("tab\there", @"tab\there")]
    [InlineData("back\\slash", @"back\\slash")]
    [InlineData("nul\0esc\u001b[31m", @"nul\x00esc\x1b[31m")]
    [InlineData("del\u007fc1\u0085", @"del\x7fc1\x85")]
    [InlineData("ls\u2028ps\u2029", @"ls\u2028ps\u2029")]
    [InlineData("bidi\u202egnp.exe\u2066", @"bidi\u202egnp.exe\u2066")]
    public void Escape_ControlAndLineBreakingCharacters_AreEscaped(string text, string expected) => Assert.Equal(expected, LogText.Escape(text));

    [Fact]
    public void Escape_UnpairedSurrogate_IsEscapedAndAPairIsKept()
    {
        Assert.Equal(@"x\ud800y", LogText.Escape("x\ud800y"));
        Assert.Equal("x😀y", LogText.Escape("x😀y"));
    }

    [Fact]
    public void Escape_InvalidUtf8Bytes_AreEscapedAsHex()
    {
        byte[] bytes = [(byte)'o', (byte)'k', 0xff, 0xc3, (byte)'\n', 0xc3, 0xa9];

        Assert.Equal(@"ok\xff\xc3\né", LogText.Escape(bytes));
    }

    [Fact]
    public void Escape_LongText_IsCutAtTheBoundAndSaysHowLongItWas()
    {
        var escaped = LogText.Escape(new string('\n', 300), maxChars: 100);

        Assert.Equal(100 + "...(300 chars)".Length, escaped.Length);
        Assert.EndsWith("...(300 chars)", escaped, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', escaped);
    }

    [Fact]
    public void Escape_TextExactlyAtTheBound_IsNotCut()
    {
        var text = new string('a', 64);

        Assert.Equal(text, LogText.Escape(text, maxChars: 64));
        Assert.Equal(@"aaa\n", LogText.Escape("aaa\n", maxChars: 5));
    }

    [Fact]
    public void Escape_EveryByteValue_GivesOnePrintableLine()
    {
        var all = new byte[256];
        for (var i = 0; i < all.Length; i++)
        {
            all[i] = (byte)i;
        }

        var escaped = LogText.Escape(all, maxChars: 4096);

        Assert.DoesNotContain(escaped, c => char.IsControl(c) || c is '\u2028' or '\u2029');
        Assert.True(Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(escaped)) == escaped, "the escaped text is not valid UTF-16");
    }
}
