using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// <c>--workers 4</c>: SIGKILL one worker during a stream of CONNECTs. New connections keep
/// succeeding (the others share the listener via SO_REUSEPORT) and the supervisor brings the worker
/// count back to 4 within a second (issue 3; it restarts a worker 100 ms after its death). Outcomes
/// are polled against deadlines.
/// </summary>
[Collection(ProxyLabGroup.Name)]
public sealed class WorkersTests(ProxyLabFixture lab)
{
    private const int Port = 1091;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Workers_OneKilled_ConnectsKeepSucceedingAndCountIsBackWithinASecond()
    {
        ProxyUnderTest.SkipUnlessL2Proxy("--workers (a supervisor that restarts a killed worker)");

        // using: a failure before the end must not leave four workers on the port the next classes use.
        using var supervisor = lab.Lab.Proxy.Start(LabBinaries.L2Proxy, "--listen", $"198.18.1.1:{Port}", "--external", "198.18.2.1",
            "--allow", "198.18.1.0/24", "--workers", "4");
        await lab.Lab.Client.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, Port, ProxyLabFixture.ReadyTimeout, lab.Describe, supervisor).WithTimeout();
        var workers = await PollAsync(() => Children(supervisor.Id) is { Count: 4 } c ? c : null, "4 workers");

        // Phase when each CONNECT started: 0 before the kill, 1 after it, 2 once the count is back to 4.
        var log = new List<(int Phase, bool Ok)>();
        var phase = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var stream = Task.Run(async () =>
        {
            // Bounded: at most 3000 CONNECTs and 60 s.
            for (int i = 0; i < 3000 && !stop.IsCancellationRequested; i++)
            {
                var started = Volatile.Read(ref phase);
                var ok = await TryConnectAsync(i);
                lock (log)
                {
                    log.Add((started, ok));
                }
            }
        });

        await PollAsync(() => Count(log, 0, ok: true) >= 10 ? "" : null, "10 CONNECTs before the kill");
        var victim = workers[1];
        using (var process = Process.GetProcessById(victim))
        {
            process.Kill(); // SIGKILL, to this PID only.
        }

        var sinceKill = Stopwatch.StartNew();
        Volatile.Write(ref phase, 1);
        var back = await PollAsync(() => Children(supervisor.Id) is { Count: 4 } c && !c.Contains(victim) ? c : null, "worker count back to 4");
        var restart = sinceKill.Elapsed;
        Volatile.Write(ref phase, 2);
        await PollAsync(() => Count(log, 2, ok: true) >= 20 ? "" : null, "20 CONNECTs after the restart");
        await stop.CancelAsync();
        await stream.WithTimeout();

        // Only the CONNECT in flight on the killed worker may fail (the stream is sequential).
        var failedAroundKill = Count(log, 0, ok: false) + Count(log, 1, ok: false);
        Assert.True(failedAroundKill <= 1, $"{failedAroundKill} CONNECTs failed around the kill\n{supervisor.Describe()}");
        Assert.True(Count(log, 1, ok: true) + Count(log, 2, ok: true) >= 20, supervisor.Describe());
        Assert.Equal(0, Count(log, 2, ok: false));
        // The cause reaches the operator: the worker-exited event (its stable id, docs/events.md) names the signal.
        Assert.Matches($@"error\[{L2Balance.Proxy.Diagnostics.EventIds.WorkerExited}\]: worker \d+ \(pid {victim}\) [^\n]*SIGKILL", supervisor.Log);
        Assert.DoesNotContain(victim, back);
        // The issue's promise: the worker is back within a second (first backoff 100 ms, polled every 50 ms).
        Assert.True(restart < TimeSpan.FromSeconds(1), $"the worker count was back to 4 only {restart.TotalMilliseconds:0} ms after the kill\n{supervisor.Describe()}");

        supervisor.Dispose();
        await PollAsync(() => back.All(pid => !Directory.Exists($"/proc/{pid}")) ? "" : null, "all workers gone after SIGTERM to the supervisor");
    }

    private static int Count(List<(int Phase, bool Ok)> log, int phase, bool ok)
    {
        lock (log)
        {
            return log.Count(e => e.Phase == phase && e.Ok == ok);
        }
    }

    private async Task<bool> TryConnectAsync(int i)
    {
        try
        {
            using var socket = await lab.Lab.Client.ConnectTcpAsync(new IPEndPoint(ProxyLab.ProxyInsideV4, Port), TimeSpan.FromSeconds(5));
            var (code, _) = await Socks5Client.HandshakeAsync(socket, Socks5Client.Connect, new IPEndPoint(ProxyLab.TargetV4, TargetServers.TcpEchoPort))
                .WithTimeout(TimeSpan.FromSeconds(5));
            if (code != 0)
            {
                return false;
            }

            var ping = Encoding.ASCII.GetBytes($"ping {i}\n");
            await socket.SendAsync(ping).WithTimeout();
            var echo = await Socks5Client.ReadExactlyAsync(socket, ping.Length).WithTimeout(TimeSpan.FromSeconds(5));
            return echo.AsSpan().SequenceEqual(ping);
        }
        catch (Exception e) when (e is SocketException or IOException or TimeoutException or InvalidOperationException or OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Polls <paramref name="probe"/> every 50 ms until it returns non-null, failing at the deadline.</summary>
    private async Task<T> PollAsync<T>(Func<T?> probe, string what)
        where T : class
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            if (probe() is { } result)
            {
                return result;
            }

            Assert.True(DateTime.UtcNow < deadline, $"not reached within {Deadline.TotalSeconds} s: {what}\n{lab.Describe()}");
            await Task.Delay(50);
        }
    }

    /// <summary>Live child PIDs of <paramref name="parent"/> (from /proc/PID/stat's ppid field).</summary>
    private static List<int> Children(int parent)
    {
        var children = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (fields[0] != "Z" && int.Parse(fields[1], CultureInfo.InvariantCulture) == parent)
                {
                    children.Add(pid);
                }
            }
            catch (IOException)
            {
                // Exited meanwhile.
            }
        }

        return children;
    }
}
