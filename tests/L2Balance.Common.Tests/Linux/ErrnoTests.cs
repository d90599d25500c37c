using L2Balance.Common.Linux;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Common.Tests.Linux;

public sealed class ErrnoTests
{
    [Theory]
    [InlineData(1, "EPERM")]
    [InlineData(17, "EEXIST")]
    [InlineData(24, "EMFILE")]
    [InlineData(99, "EADDRNOTAVAIL")]
    [InlineData(133, "EHWPOISON")]
    public void Name_KnownErrno_IsItsSymbol(int errno, string name)
    {
        Assert.Equal(name, Errno.Name(errno));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(41)]
    [InlineData(4242)]
    [InlineData(-1)]
    public void Name_ValueLinuxDoesNotDefine_IsTheNumber(int errno)
    {
        Assert.Equal($"errno {errno}", Errno.Name(errno));
    }

    [Fact]
    public void Name_OfEachConstant_IsItsOwnSymbol()
    {
        Assert.Equal(
            ["EPERM", "ENOENT", "EINTR", "EAGAIN", "EEXIST", "ENODEV", "EINVAL", "EADDRNOTAVAIL"],
            new[] { Errno.EPERM, Errno.ENOENT, Errno.EINTR, Errno.EAGAIN, Errno.EEXIST, Errno.ENODEV, Errno.EINVAL, Errno.EADDRNOTAVAIL }.Select(Errno.Name));
    }

    [Fact]
    public void Names_AgreeWithTheCLibrary_ForEveryValueUpTo200()
    {
        // glibc's strerrorname_np (2.32+) is the C library's own table of the same names.
        var libc = NativeProgram.CompileAndRun(
            """
            #define _GNU_SOURCE
            #include <stdio.h>
            #include <string.h>
            int main(void) {
                for (int i = 1; i <= 200; i++) {
                    const char *name = strerrorname_np(i);
                    if (name) printf("%s %d\n", name, i);
                }
                return 0;
            }
            """,
            "errno-names-");
        var fromLibc = libc.ToDictionary(p => (int)p.Value, p => p.Key);

        for (var errno = 1; errno <= 200; errno++)
        {
            Assert.Equal(fromLibc.GetValueOrDefault(errno), Errno.Known(errno));
        }
    }
}
