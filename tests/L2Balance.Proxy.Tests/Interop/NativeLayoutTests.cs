using System.Diagnostics;
using System.Globalization;
using L2Balance.Tests.Common;
using Xunit;
using static L2Balance.Proxy.Interop.Interop.Epoll;

namespace L2Balance.Proxy.Tests.Interop;

/// <summary>
/// The epoll layout and the constants the UDP poller shares with the kernel, checked against the
/// system headers by compiling a tiny C program (docs/conventions.md §11, Tmds.LibC StructTests/ConstantsTests).
/// </summary>
public sealed class NativeLayoutTests
{
    private const string Program = """
        #include <stdio.h>
        #include <stddef.h>
        #include <errno.h>
        #include <sys/epoll.h>
        #include <sys/socket.h>
        #define P(name, value) printf("%s %ld\n", name, (long)(value))
        int main(void) {
            P("sizeof(epoll_event)", sizeof(struct epoll_event));
            P("offsetof(epoll_event.data)", offsetof(struct epoll_event, data));
            P("EPOLL_CLOEXEC", EPOLL_CLOEXEC);
            P("EPOLL_CTL_ADD", EPOLL_CTL_ADD);
            P("EPOLL_CTL_DEL", EPOLL_CTL_DEL);
            P("EPOLLIN", EPOLLIN);
            P("EPOLLERR", EPOLLERR);
            P("EPOLLHUP", EPOLLHUP);
            P("MSG_DONTWAIT", MSG_DONTWAIT);
            P("EINTR", EINTR);
            P("EAGAIN", EAGAIN);
            P("ECONNREFUSED", ECONNREFUSED);
            return 0;
        }
        """;

    private static readonly Lazy<Dictionary<string, long>> Native = new(() => NativeProgram.CompileAndRun(Program, "l2proxy-layout-"));

    public static TheoryData<string, long> Expected => new()
    {
        { "sizeof(epoll_event)", EventSize },
        { "offsetof(epoll_event.data)", EventDataOffset },
        { "EPOLL_CLOEXEC", EPOLL_CLOEXEC },
        { "EPOLL_CTL_ADD", EPOLL_CTL_ADD },
        { "EPOLL_CTL_DEL", EPOLL_CTL_DEL },
        { "EPOLLIN", EPOLLIN },
        { "EPOLLERR", EPOLLERR },
        { "EPOLLHUP", EPOLLHUP },
        { "MSG_DONTWAIT", MSG_DONTWAIT },
        { "EINTR", EINTR },
        { "EAGAIN", EAGAIN },
        { "ECONNREFUSED", ECONNREFUSED },
    };

    [SkippableTheory]
    [MemberData(nameof(Expected))]
    public void NativeConstant_ComparedWithSystemHeaders_IsEqual(string name, long managed)
    {
        Assert.True(Native.Value.TryGetValue(name, out long native), $"{name} not printed by the C program");
        Assert.Equal(native, managed);
    }
}
