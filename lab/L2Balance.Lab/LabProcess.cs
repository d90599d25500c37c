using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace L2Balance.Lab;

/// <summary>
/// A long-running program started inside a lab namespace with <c>ip netns exec</c>. That command
/// execs the program in place, so <see cref="Id"/> is the program's own PID; only this PID is
/// ever signalled.
/// </summary>
public sealed class LabProcess : IDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(2);

    private readonly Process _process;
    private readonly StringBuilder _log = new();
    private readonly DateTime _started = DateTime.UtcNow;
    private int? _exitCodeAfterDispose;
    private bool _disposed;

    internal LabProcess(string name, string commandLine, Process process)
    {
        Name = name;
        CommandLine = commandLine;
        _process = process;
        _process.OutputDataReceived += (_, e) => Append("out", e.Data);
        _process.ErrorDataReceived += (_, e) => Append("err", e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        Id = process.Id;
    }

    /// <summary>A short label for logs ("proxy:l2proxy").</summary>
    public string Name { get; }

    /// <summary>The command as started, for messages.</summary>
    public string CommandLine { get; }

    /// <summary>The program's PID.</summary>
    public int Id { get; }

    /// <summary>True once the program has exited.</summary>
    public bool HasExited => _disposed || _process.HasExited;

    /// <summary>The exit code, or null while it runs (or if it could not be read).</summary>
    public int? ExitCode => _disposed ? _exitCodeAfterDispose : _process.HasExited ? _process.ExitCode : null;

    /// <summary>Everything captured so far from stdout and stderr, one timestamped line each.</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>Lines of the log that <see cref="Describe"/> shows: the last ones, where a failure is.</summary>
    public const int DescribedLines = 200;

    /// <summary>
    /// A block for assertion messages: the command, its state and the last
    /// <see cref="DescribedLines"/> lines of its log (a target server that logs each connection
    /// reaches tens of thousands over a suite; <see cref="Log"/> has them all).
    /// </summary>
    public string Describe()
    {
        var log = Log;
        var start = log.Length;
        for (var lines = 0; lines <= DescribedLines && start > 0; lines++)
        {
            start = log.LastIndexOf('\n', start - 1);
            if (start < 0)
            {
                start = 0;
                break;
            }
        }
        var cut = start > 0 ? $"[{log.AsSpan(0, start + 1).Count('\n')} earlier lines left out]\n" : string.Empty;
        return $"{Header}\n{cut}{(start > 0 ? log[(start + 1)..] : log)}";
    }

    /// <summary>The command and its state, as the first line of <see cref="Describe"/>.</summary>
    public string Header => $"=== {Name} (pid {Id}, {(HasExited ? $"exited {ExitCode}" : "running")}): {CommandLine}";

    /// <summary>Sends <paramref name="signal"/> to this program (only to its PID).</summary>
    public void Kill(int signal = Interop.Sys.SIGTERM)
    {
        if (!HasExited)
        {
            _ = Interop.Sys.kill(Id, signal);
        }
    }

    /// <summary>
    /// Waits for exit and for the last of its output to reach <see cref="Log"/>; returns false if it
    /// is still running after <paramref name="timeout"/>. No shortcut on <see cref="HasExited"/>:
    /// the process can have exited while its last lines are still on their way to the log (a
    /// one-frame tcpdump capture was read as empty that way), and Process.WaitForExitAsync waits
    /// for the redirected streams to end.
    /// </summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        if (_disposed)
        {
            return true;
        }

        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>SIGTERM, then SIGKILL after 2 s. Never throws.</summary>
    public void Stop()
    {
        try
        {
            if (HasExited)
            {
                return;
            }

            Kill(Interop.Sys.SIGTERM);
            if (!_process.WaitForExit(StopGrace))
            {
                Kill(Interop.Sys.SIGKILL);
                _process.WaitForExit(StopGrace);
            }
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        Stop();
        try
        {
            _exitCodeAfterDispose = _process.HasExited ? _process.ExitCode : null;
        }
        catch (InvalidOperationException)
        {
            _exitCodeAfterDispose = null;
        }

        _disposed = true;
        _process.Dispose();
    }

    private void Append(string stream, string? line)
    {
        if (line is null)
        {
            return;
        }

        var t = (DateTime.UtcNow - _started).TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture);
        lock (_log)
        {
            _log.Append('[').Append(t).Append("s ").Append(stream).Append("] ").AppendLine(line);
        }
    }
}
