using System.Net.Sockets;
using System.Text;
using L2Balance.Common.Linux;
using Xunit;

namespace L2Balance.Common.Tests.Linux;

/// <summary>The messages reach a real unix datagram socket bound by the test, as systemd binds its notify socket.</summary>
public sealed class SystemdNotifyTests
{
    [Fact]
    public void From_NoNotifySocket_IsNull()
    {
        Assert.Null(SystemdNotify.From(_ => null, 42));
        Assert.Null(SystemdNotify.From(v => v == SystemdNotify.SocketVariable ? "relative/path" : null, 42));
    }

    [Fact]
    public void Send_ToAbstractSocket_DeliversEachMessageAsOneDatagram()
    {
        var name = $"l2balance-notify-test-{Environment.ProcessId}-{Guid.NewGuid():N}";
        using var listener = Bind("\0" + name);
        using var notify = SystemdNotify.From(Variables("@" + name), Environment.ProcessId);
        Assert.NotNull(notify);
        Assert.True(notify.Ready("active, 2048 buckets"));
        Assert.True(notify.Status("joining"));
        Assert.True(notify.Watchdog());
        Assert.True(notify.Stopping());
        Assert.Equal("READY=1\nSTATUS=active, 2048 buckets", Receive(listener));
        Assert.Equal("STATUS=joining", Receive(listener));
        Assert.Equal("WATCHDOG=1", Receive(listener));
        Assert.Equal("STOPPING=1", Receive(listener));
    }

    [Fact]
    public void Send_ToPathSocket_DeliversReloadingWithMonotonicTime()
    {
        var path = Path.Combine(Path.GetTempPath(), $"l2balance-notify-{Guid.NewGuid():N}.sock");
        try
        {
            using var listener = Bind(path);
            using var notify = SystemdNotify.From(Variables(path), Environment.ProcessId);
            Assert.NotNull(notify);
            Assert.True(notify.Reloading());
            var lines = Receive(listener).Split('\n');
            Assert.Equal("RELOADING=1", lines[0]);
            Assert.StartsWith("MONOTONIC_USEC=", lines[1], StringComparison.Ordinal);
            Assert.True(ulong.Parse(lines[1]["MONOTONIC_USEC=".Length..], System.Globalization.CultureInfo.InvariantCulture) > 0);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Send_NobodyListens_ReportsFailureWithoutThrowing()
    {
        using var notify = SystemdNotify.From(Variables($"@l2balance-notify-nobody-{Guid.NewGuid():N}"), Environment.ProcessId);
        Assert.NotNull(notify);
        Assert.False(notify.Ready());
    }

    [Theory]
    [InlineData("8000000", null, 4000)]
    [InlineData("8000000", "42", 4000)]
    [InlineData("8000000", "43", null)]
    [InlineData("0", null, null)]
    [InlineData("x", null, null)]
    [InlineData(null, null, null)]
    public void WatchdogFrom_UsecAndPid_IsHalfThePeriodForThisProcessOnly(string? usec, string? pid, int? expectedMs)
    {
        Assert.Equal(expectedMs is { } ms ? TimeSpan.FromMilliseconds(ms) : null, SystemdNotify.WatchdogFrom(usec, pid, 42));
    }

    private static Func<string, string?> Variables(string socket) => v => v == SystemdNotify.SocketVariable ? socket : null;

    private static Socket Bind(string address)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { ReceiveTimeout = 5000 };
        socket.Bind(new UnixDomainSocketEndPoint(address));
        return socket;
    }

    private static string Receive(Socket socket)
    {
        var buffer = new byte[4096];
        return Encoding.UTF8.GetString(buffer, 0, socket.Receive(buffer));
    }
}
