using System.Diagnostics;
using System.Globalization;
using Xunit;
using static L2Balance.Proxy.Interop.Interop.Epoll;

namespace L2Balance.Proxy.Tests.Interop;

/// <summary>
/// The epoll layout and the constants the UDP poller shares with the kernel, checked against the
/// system headers by compiling a tiny C program (STYLE 11, Tmds.LibC StructTests/ConstantsTests).
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

    private static readonly Lazy<Dictionary<string, long>> Native = new(CompileAndRun);

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

    [Theory]
    [MemberData(nameof(Expected))]
    public void MatchesSystemHeaders(string name, long managed)
    {
        Assert.True(Native.Value.TryGetValue(name, out long native), $"{name} not printed by the C program");
        Assert.Equal(native, managed);
    }

    private static Dictionary<string, long> CompileAndRun()
    {
        var compiler = new[] { "clang", "gcc", "cc" }.FirstOrDefault(c => Environment.GetEnvironmentVariable("PATH")!.Split(':').Any(d => File.Exists(Path.Combine(d, c))))
            ?? throw new InvalidOperationException("no C compiler: apt-get install -y clang (or gcc)");
        var dir = Directory.CreateTempSubdirectory("l2proxy-layout-");
        try
        {
            var source = Path.Combine(dir.FullName, "layout.c");
            var binary = Path.Combine(dir.FullName, "layout");
            File.WriteAllText(source, Program);
            Run(compiler, ["-o", binary, source]);
            return Run(binary, [])
                .Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(line => line.Split(' '))
                .ToDictionary(w => w[0], w => long.Parse(w[1], CultureInfo.InvariantCulture));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static string Run(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(30_000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} did not finish within 30 s");
        }

        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} exited {p.ExitCode}: {stderr.Result}");
        }

        return stdout.Result;
    }
}
