using System.Diagnostics;
using L2Balance.Proxy.Diagnostics;
using Sys = L2Balance.Proxy.Interop.Interop.Process;

namespace L2Balance.Proxy.Workers;

/// <summary>
/// <c>--workers N</c>: this process supervises N workers, each a re-exec of the same binary with the
/// same arguments plus the hidden <c>--worker I</c>. Every worker binds the listeners itself with
/// SO_REUSEPORT, so the kernel spreads new connections over the live ones; a worker that dies is
/// logged with its cause and restarted after a backoff (relayd logs and shuts down; docs/conventions.md §16 asks
/// for a restart). UDP associations and BIND stay in the worker that accepted the control
/// connection. SIGTERM or SIGINT to the supervisor stops every worker.
/// </summary>
internal sealed class WorkerSupervisor
{
    /// <summary>The hidden flag that makes a process a worker; always the last two arguments.</summary>
    public const string WorkerFlag = "--worker";

    /// <summary>Environment variable that tells a worker its supervisor's PID.</summary>
    private const string SupervisorPidVariable = "L2PROXY_SUPERVISOR_PID";

    /// <summary>First restart delay; doubled per quick death up to <see cref="MaxBackoff"/> so a crash loop does not spin.</summary>
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    /// <summary>A worker that ran this long before dying restarts after <see cref="FirstBackoff"/> again.</summary>
    private static readonly TimeSpan HealthyRun = TimeSpan.FromSeconds(10);

    /// <summary>How long workers get to finish after SIGTERM before SIGKILL.</summary>
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(5);

    private readonly int _count;
    private readonly IReadOnlyList<string> _args;
    private readonly ProxyLog _log;
    private readonly Process?[] _workers;
    private readonly object _lock = new();
    private bool _stopping;

    /// <summary>The migration control requests' forwarding: each spawn gets a channel (<see cref="WorkerChannel"/>), attached here.</summary>
    public WorkerMigrationForwarder? Migration { get; init; }

    /// <summary>The workers' NOTIFY_SOCKET: the supervisor's <see cref="WorkerReadiness"/> under systemd, else none.</summary>
    public string? WorkersNotifySocket { get; init; }

    public WorkerSupervisor(int count, IReadOnlyList<string> args, ProxyLog log)
    {
        _count = count;
        _args = args;
        _log = log;
        _workers = new Process?[count];
    }

    /// <summary>Runs the workers until <paramref name="stop"/> completes, then stops them all.</summary>
    public async Task RunAsync(Task<string> stop)
    {
        var loops = Enumerable.Range(0, _count).Select(i => KeepAliveAsync(i, stop)).ToArray();
        var reason = await stop.ConfigureAwait(false);
        lock (_lock)
        {
            _stopping = true;
            foreach (var worker in _workers)
            {
                Signal(worker, Sys.SIGTERM);
            }
        }
        var all = Task.WhenAll(loops);
        if (await Task.WhenAny(all, Task.Delay(StopGrace)).ConfigureAwait(false) != all)
        {
            lock (_lock)
            {
                foreach (var worker in _workers)
                {
                    Signal(worker, Sys.SIGKILL);
                }
            }
            await all.ConfigureAwait(false);
        }
        _log.Stopping(reason, 0);
    }

    private async Task KeepAliveAsync(int index, Task stop)
    {
        var backoff = FirstBackoff;
        while (true)
        {
            Process process;
            lock (_lock)
            {
                if (_stopping || stop.IsCompleted)
                {
                    return;
                }
                try
                {
                    process = Start(index);
                }
                catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
                {
                    _log.WorkerExited(index, 0, $"could not start: {e.Message}");
                    process = null!;
                }
                _workers[index] = process;
            }
            if (process is not null)
            {
                _log.WorkerStarted(index, process.Id);
                var started = Stopwatch.GetTimestamp();
                await process.WaitForExitAsync().ConfigureAwait(false);
                var cause = Cause(process.ExitCode);
                lock (_lock)
                {
                    _workers[index] = null;
                    if (_stopping || stop.IsCompleted)
                    {
                        process.Dispose();
                        return;
                    }
                }
                _log.WorkerExited(index, process.Id, cause);
                process.Dispose();
                if (Stopwatch.GetElapsedTime(started) > HealthyRun)
                {
                    backoff = FirstBackoff;
                }
            }
            await Task.WhenAny(stop, Task.Delay(backoff)).ConfigureAwait(false);
            backoff = backoff * 2 > MaxBackoff ? MaxBackoff : backoff * 2;
        }
    }

    private Process Start(int index)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath ?? throw new InvalidOperationException("no path of the running binary"))
        {
            UseShellExecute = false,
        };
        foreach (var arg in _args)
        {
            psi.ArgumentList.Add(arg);
        }
        // systemd's socket is the supervisor's: a worker reports to the supervisor, never past it.
        if (WorkersNotifySocket is null)
        {
            psi.Environment.Remove(L2Balance.Common.Linux.SystemdNotify.SocketVariable);
        }
        else
        {
            psi.Environment[L2Balance.Common.Linux.SystemdNotify.SocketVariable] = WorkersNotifySocket;
        }
        psi.Environment[SupervisorPidVariable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        psi.ArgumentList.Add(WorkerFlag);
        psi.ArgumentList.Add(index.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (Migration is null)
        {
            return Process.Start(psi) ?? throw new InvalidOperationException("Process.Start returned null");
        }
        // Called under _lock: no other spawn inherits this worker's end while it is inheritable.
        var (supervisorEnd, workerEnd) = WorkerChannel.CreatePair(inheritable: true);
        try
        {
            using (workerEnd)
            {
                psi.Environment[WorkerChannel.DescriptorVariable] = workerEnd.DangerousGetHandle().ToString(System.Globalization.CultureInfo.InvariantCulture);
                var process = Process.Start(psi) ?? throw new InvalidOperationException("Process.Start returned null");
                Migration.Attach(index, supervisorEnd);
                return process;
            }
        }
        catch
        {
            supervisorEnd.Dispose();
            throw;
        }
    }

    /// <summary>SIGHUP: every running worker re-reads the configuration itself.</summary>
    public void Reload()
    {
        lock (_lock)
        {
            foreach (var worker in _workers)
            {
                Signal(worker, Sys.SIGHUP);
            }
        }
    }

    private static void Signal(Process? process, int signal)
    {
        if (process is not null)
        {
            _ = Sys.kill(process.Id, signal);
        }
    }

    /// <summary>.NET reports a death by signal N as exit code 128 + N.</summary>
    private static string Cause(int exitCode) => exitCode switch
    {
        > 128 and < 128 + 65 => $"killed by signal {exitCode - 128}{SignalName(exitCode - 128)}",
        0 => "exited with code 0",
        _ => $"exited with code {exitCode}",
    };

    private static string SignalName(int signal) => signal switch
    {
        Sys.SIGKILL => " (SIGKILL)",
        Sys.SIGTERM => " (SIGTERM)",
        6 => " (SIGABRT)",
        11 => " (SIGSEGV)",
        _ => string.Empty,
    };

    /// <summary>
    /// In a worker: calls <paramref name="orphaned"/> once the supervisor is gone (checked every second),
    /// so no worker outlives it. Not PR_SET_PDEATHSIG: that fires when the parent *thread* that forked
    /// ends, and the supervisor forks from thread-pool threads, which the pool retires when idle.
    /// </summary>
    public static ITimer WatchSupervisor(Action orphaned)
    {
        var expected = int.TryParse(Environment.GetEnvironmentVariable(SupervisorPidVariable), System.Globalization.CultureInfo.InvariantCulture, out var pid) ? pid : Sys.getppid();
        return TimeProvider.System.CreateTimer(_ =>
        {
            if (Sys.getppid() != expected)
            {
                orphaned();
            }
        }, null, TimeSpan.Zero, TimeSpan.FromSeconds(1));
    }
}
