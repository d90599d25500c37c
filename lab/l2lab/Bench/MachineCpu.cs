using System.Globalization;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// The machine's CPU from the first line of /proc/stat, in seconds, by kind. Busy is user, nice,
/// system, irq and softirq: steal (another guest's time) and idle/iowait are not this machine's work.
/// </summary>
internal readonly record struct MachineCpu(double User, double System, double Irq, double Softirq, double Steal, double Idle)
{
    /// <summary>USER_HZ, the unit of /proc/stat and /proc/PID/stat: 100 on every Linux architecture .NET runs on.</summary>
    public const double TicksPerSecond = 100;

    public double Busy => User + System + Irq + Softirq;

    public static MachineCpu Read()
    {
        // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user).
        var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Skip(1).Take(8).Select(v => long.Parse(v, CultureInfo.InvariantCulture) / TicksPerSecond).ToArray();
        return new MachineCpu(f[0] + f[1], f[2], f[5], f[6], f[7], f[3] + f[4]);
    }

    public static MachineCpu operator -(MachineCpu a, MachineCpu b) =>
        new(a.User - b.User, a.System - b.System, a.Irq - b.Irq, a.Softirq - b.Softirq, a.Steal - b.Steal, a.Idle - b.Idle);
}

/// <summary>A process's own CPU so far (all its threads), from /proc/PID/stat: user and system seconds.</summary>
internal readonly record struct ProcessCpu(double User, double System)
{
    public double Total => User + System;

    /// <summary>
    /// Reads a stat line: <paramref name="children"/> takes cutime and cstime instead (the reaped
    /// children's time, how a shell reports the program it ran). Null when the process is gone.
    /// </summary>
    public static ProcessCpu? Read(int pid, bool children = false)
    {
        try
        {
            return Parse(File.ReadAllText($"/proc/{pid}/stat"), children);
        }
        catch (IOException)
        {
            return null;
        }
    }

    public static ProcessCpu Parse(string stat, bool children)
    {
        // After "pid (comm) ": state is [0], utime [11], stime [12], cutime [13], cstime [14].
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var at = children ? 13 : 11;
        return new ProcessCpu(
            long.Parse(fields[at], CultureInfo.InvariantCulture) / MachineCpu.TicksPerSecond,
            long.Parse(fields[at + 1], CultureInfo.InvariantCulture) / MachineCpu.TicksPerSecond);
    }

    public static ProcessCpu operator -(ProcessCpu a, ProcessCpu b) => new(a.User - b.User, a.System - b.System);
}
