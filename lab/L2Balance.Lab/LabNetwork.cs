using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace L2Balance.Lab;

/// <summary>
/// A set of network namespaces built for one run, named <c>l2b{pid}x{rand4}-{name}</c>. Nothing is
/// ever added to the root namespace: veths are created directly between lab namespaces. Disposing
/// stops every process started here and deletes every namespace; it also runs on process exit
/// and Ctrl+C. Stale namespaces of dead runs are removed on creation.
/// </summary>
public sealed partial class LabNetwork : IAsyncDisposable, IDisposable
{
    /// <summary>Every lab namespace starts with this.</summary>
    public const string NamePrefix = "l2b";

    private readonly List<LabHost> _hosts = [];
    private readonly ConcurrentQueue<LabProcess> _processes = new();
    private readonly ConcurrentQueue<string> _tempPaths = new();
    private readonly ConsoleCancelEventHandler _onCancel;
    private readonly EventHandler _onExit;
    private int _disposed;

    private LabNetwork(string prefix)
    {
        Prefix = prefix;
        _onExit = (_, _) => Dispose();
        _onCancel = (_, _) => Dispose();
        AppDomain.CurrentDomain.ProcessExit += _onExit;
        Console.CancelKeyPress += _onCancel;
    }

    /// <summary>The run-unique namespace prefix, e.g. <c>l2b4242x1f0c-</c>.</summary>
    public string Prefix { get; }

    /// <summary>The hosts and switches created so far.</summary>
    public IReadOnlyList<LabHost> Hosts
    {
        get
        {
            lock (_hosts)
            {
                return [.. _hosts];
            }
        }
    }

    /// <summary>
    /// Checks the prerequisites (root, iproute2), removes stale namespaces of dead runs and returns
    /// an empty lab.
    /// </summary>
    /// <exception cref="LabUnavailableException">Not root, or <c>ip</c> is missing.</exception>
    public static LabNetwork Create()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            throw new LabUnavailableException("lab tests need root: run as root (sudo)");
        }

        LabBinaries.Require("ip", "iproute2");
        CleanStale();
        var random = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));
        return new LabNetwork($"{NamePrefix}{Environment.ProcessId}x{random}-");
    }

    /// <summary>
    /// Deletes lab namespaces whose embedded PID is not a live process, after killing whatever
    /// still runs inside them. Returns the names removed.
    /// </summary>
    public static IReadOnlyList<string> CleanStale()
    {
        var removed = new List<string>();
        foreach (var name in ListNamespaces())
        {
            var match = LabNamespaceName().Match(name);
            if (!match.Success)
            {
                continue;
            }

            var pid = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            if (Directory.Exists($"/proc/{pid}"))
            {
                continue;
            }

            DeleteNamespace(name);
            removed.Add(name);
        }

        return removed;
    }

    /// <summary>All named network namespaces on the machine (<c>ip netns list</c>).</summary>
    public static IReadOnlyList<string> ListNamespaces() =>
        CommandRunner.Run("ip", ["netns", "list"]).EnsureSuccess().StdOut
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ', 2)[0])
            .ToArray();

    /// <summary>Adds a host: namespace <c>{prefix}{name}</c> with lo up.</summary>
    public LabHost AddHost(string name) => Add(name, isSwitch: false);

    /// <summary>
    /// Adds a switch: a namespace with bridge br0 at its multicast defaults (mcast_snooping 1,
    /// mcast_querier 0), which floods multicast-MAC frames (docs/design.md#switches), made to
    /// forward as a hardware switch does: no IP firewall on the frames it forwards, and no data
    /// frames for its own CPU.
    /// </summary>
    /// <remarks>
    /// Linux's bridge otherwise runs the namespace's IP hooks on every bridged frame where
    /// br_netfilter is built in (bridge-nf-call-*, on by default), and passes a copy of every
    /// multicast-MAC frame up its own stack, where it costs a route lookup and a dropped route per
    /// frame. On a lab whose nodes share the same cores that bills the cluster MAC with the
    /// switch's own work (docs/benchmarks.md#lab-switch).
    /// </remarks>
    public LabHost AddSwitch(string name)
    {
        var sw = Add(name, isSwitch: true);
        Ip(["-n", sw.Namespace, "link", "add", "br0", "type", "bridge"]);
        CommandRunner.Run("ip", ["netns", "exec", sw.Namespace, "sh", "-c",
            "for f in /proc/sys/net/bridge/bridge-nf-call-*; do if [ -e \"$f\" ]; then echo 0 > \"$f\"; fi; done"]).EnsureSuccess();
        CommandRunner.RunAsync("ip", ["netns", "exec", sw.Namespace, LabBinaries.Require("nft", "nftables"), "-f", "-"], CommandRunner.SetupTimeout, """
            table bridge l2lab_switch {
                comment "lab switch: forwards frames, takes none for itself";
                chain input {
                    type filter hook input priority 0; policy drop;
                }
            }
            """).GetAwaiter().GetResult().EnsureSuccess();
        sw.SetLinkUp("br0");
        return sw;
    }

    /// <summary>Creates a veth pair directly between two namespaces and sets both ends up.</summary>
    public void Link(LabHost hostA, string interfaceA, LabHost hostB, string interfaceB)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (hostA.Network != this || hostB.Network != this)
        {
            throw new ArgumentException("both hosts must belong to this lab");
        }

        Ip(["-n", hostA.Namespace, "link", "add", interfaceA, "type", "veth", "peer", "name", interfaceB, "netns", hostB.Namespace]);
        hostA.SetLinkUp(interfaceA);
        hostB.SetLinkUp(interfaceB);
    }

    /// <summary>Connects a host to a switch: port pN on br0, <paramref name="interfaceName"/> on the host.</summary>
    public string ConnectToSwitch(LabHost switchHost, LabHost host, string interfaceName)
    {
        if (!switchHost.IsSwitch)
        {
            throw new ArgumentException($"{switchHost.Name} is not a switch", nameof(switchHost));
        }

        var port = switchHost.NextSwitchPort();
        Link(switchHost, port, host, interfaceName);
        Ip(["-n", switchHost.Namespace, "link", "set", port, "master", "br0"]);
        return port;
    }

    /// <summary>A temporary directory removed at teardown.</summary>
    public string CreateTempDirectory(string name)
    {
        var path = Path.Combine(Path.GetTempPath(), Prefix + name);
        Directory.CreateDirectory(path);
        _tempPaths.Enqueue(path);
        return path;
    }

    /// <summary>Every started process's log, for failure messages.</summary>
    public string DescribeProcesses() => string.Join('\n', _processes.Select(p => p.Describe()));

    /// <summary>Every process's whole log under its header, for a bench to read (DescribeProcesses keeps only the last lines).</summary>
    public string ProcessLogs() => string.Join('\n', _processes.Select(p => $"{p.Header}\n{p.Log}"));

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>Stops every process started here and deletes every namespace. Never throws.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        AppDomain.CurrentDomain.ProcessExit -= _onExit;
        Console.CancelKeyPress -= _onCancel;
        Parallel.ForEach(_processes, p =>
        {
            try
            {
                p.Dispose();
            }
            catch (Exception)
            {
                // Teardown goes on whatever one process does.
            }
        });

        foreach (var host in Hosts)
        {
            DeleteNamespace(host.Namespace);
        }

        while (_tempPaths.TryDequeue(out var path))
        {
            TryDeleteDirectory(path);
        }
    }

    internal void Track(LabProcess process) => _processes.Enqueue(process);

    internal static void Ip(IReadOnlyList<string> args) => CommandRunner.Run("ip", args).EnsureSuccess();

    internal static string EtcNetnsDirectory(LabHost host)
    {
        var dir = $"/etc/netns/{host.Namespace}";
        Directory.CreateDirectory(dir);
        return dir;
    }

    private LabHost Add(string name, bool isSwitch)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var host = new LabHost(this, name, isSwitch);
        lock (_hosts)
        {
            _hosts.Add(host);
        }

        Ip(["netns", "add", host.Namespace]);
        host.SetLinkUp("lo");

        // IPv6 addresses must be usable at once: no duplicate address detection in the lab.
        host.SetSysctl("net.ipv6.conf.all.accept_dad", "0");
        host.SetSysctl("net.ipv6.conf.default.accept_dad", "0");
        return host;
    }

    /// <summary>Kills what runs inside (only lab namespaces get here), deletes it and its /etc/netns entry. Never throws.</summary>
    private static void DeleteNamespace(string name)
    {
        try
        {
            var pids = CommandRunner.Run("ip", ["netns", "pids", name]);
            foreach (var word in pids.StdOut.Split((char[])['\n', ' '], StringSplitOptions.RemoveEmptyEntries))
            {
                if (int.TryParse(word, CultureInfo.InvariantCulture, out var pid) && pid != Environment.ProcessId)
                {
                    _ = Interop.Sys.kill(pid, Interop.Sys.SIGKILL);
                }
            }

            CommandRunner.Run("ip", ["netns", "del", name]);
        }
        catch (Exception)
        {
            // Best effort: a later run's CleanStale retries.
        }

        TryDeleteDirectory($"/etc/netns/{name}");
    }

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (Exception)
        {
            // Best effort.
        }
    }

    [GeneratedRegex(@"^l2b(\d+)x[0-9a-f]{4}-")]
    private static partial Regex LabNamespaceName();
}
