using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace L2Balance.Common.Linux;

/// <summary>
/// sd_notify(3) without libsystemd: one datagram per state change to the unix socket named by
/// <c>NOTIFY_SOCKET</c> (a path, or an abstract name written with a leading <c>@</c>), as
/// systemd's Type=notify units expect. Without <c>NOTIFY_SOCKET</c> (not started by systemd) there
/// is no notifier and nothing is sent. A send that fails is reported, never thrown: readiness is
/// a courtesy to the supervisor, never a reason to stop serving (docs/design.md#systemd).
/// </summary>
public sealed class SystemdNotify : IDisposable
{
    /// <summary>The variable systemd sets for a Type=notify service (sd_notify(3)).</summary>
    public const string SocketVariable = "NOTIFY_SOCKET";

    /// <summary>The watchdog period systemd expects a ping within, in microseconds (sd_watchdog_enabled(3)).</summary>
    public const string WatchdogUsecVariable = "WATCHDOG_USEC";

    /// <summary>The process the watchdog period is meant for; another process (a child) ignores it.</summary>
    public const string WatchdogPidVariable = "WATCHDOG_PID";

    private readonly Socket _socket;
    private readonly UnixDomainSocketEndPoint _target;
    private readonly object _lock = new();

    private SystemdNotify(string address, TimeSpan? watchdog)
    {
        Address = address;
        WatchdogInterval = watchdog;
        // An abstract name starts with a NUL byte on the wire; systemd writes it with '@'.
        _target = new UnixDomainSocketEndPoint(address[0] == '@' ? "\0" + address[1..] : address);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    /// <summary>The socket messages go to, as <c>NOTIFY_SOCKET</c> names it.</summary>
    public string Address { get; }

    /// <summary>How often to send WATCHDOG=1: half of <c>WATCHDOG_USEC</c>, as sd_watchdog_enabled(3) advises; null when no watchdog is set for this process.</summary>
    public TimeSpan? WatchdogInterval { get; }

    /// <summary>The notifier this process's environment asks for, or null when no supervisor listens.</summary>
    public static SystemdNotify? FromEnvironment() => From(Environment.GetEnvironmentVariable, Environment.ProcessId);

    /// <summary>The notifier the variables of <paramref name="variable"/> ask for, for process <paramref name="pid"/>; null when none.</summary>
    public static SystemdNotify? From(Func<string, string?> variable, int pid)
    {
        var address = variable(SocketVariable);
        if (string.IsNullOrEmpty(address) || (address[0] != '/' && address[0] != '@'))
        {
            return null;
        }
        return new SystemdNotify(address, WatchdogFrom(variable(WatchdogUsecVariable), variable(WatchdogPidVariable), pid));
    }

    /// <summary>Half the watchdog period for process <paramref name="pid"/>, or null when none is set or it is meant for another process.</summary>
    public static TimeSpan? WatchdogFrom(string? usec, string? forPid, int pid)
    {
        if (!ulong.TryParse(usec, NumberStyles.None, CultureInfo.InvariantCulture, out var micros) || micros == 0)
        {
            return null;
        }
        if (!string.IsNullOrEmpty(forPid) && (!int.TryParse(forPid, NumberStyles.None, CultureInfo.InvariantCulture, out var target) || target != pid))
        {
            return null;
        }
        return TimeSpan.FromMicroseconds(micros / 2.0);
    }

    /// <summary>READY=1: startup is finished (for l2bal: tables installed and listening; for l2proxy: listening).</summary>
    public bool Ready(string? status = null) => Send(status is null ? "READY=1" : $"READY=1\nSTATUS={status}");

    /// <summary>RELOADING=1 with the monotonic time systemd's Type=notify-reload matches it by.</summary>
    public bool Reloading() => Send(string.Create(CultureInfo.InvariantCulture,
        $"RELOADING=1\nMONOTONIC_USEC={Stopwatch.GetTimestamp() / (Stopwatch.Frequency / 1_000_000)}"));

    /// <summary>STOPPING=1: a clean stop has begun.</summary>
    public bool Stopping() => Send("STOPPING=1");

    /// <summary>STATUS=: one line for <c>systemctl status</c>.</summary>
    public bool Status(string status) => Send("STATUS=" + status.ReplaceLineEndings(" "));

    /// <summary>WATCHDOG=1: the service is alive (sent by the loop that would hang).</summary>
    public bool Watchdog() => Send("WATCHDOG=1");

    /// <summary>Sends one message (newline-separated assignments); false when it could not be delivered.</summary>
    public bool Send(string message)
    {
        var bytes = Encoding.UTF8.GetBytes(message);
        lock (_lock)
        {
            try
            {
                return _socket.SendTo(bytes, SocketFlags.None, _target) == bytes.Length;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return false;
            }
        }
    }

    public void Dispose() => _socket.Dispose();
}
