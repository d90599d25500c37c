using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using L2Balance.Common.Linux;

namespace L2Balance.Lab;

/// <summary>One lab host: a network namespace named <c>{prefix}{name}</c> with lo up.</summary>
public sealed class LabHost
{
    private int _switchPorts;

    internal LabHost(LabNetwork network, string name, bool isSwitch)
    {
        Network = network;
        Name = name;
        Namespace = network.Prefix + name;
        IsSwitch = isSwitch;
    }

    /// <summary>The lab this host belongs to.</summary>
    public LabNetwork Network { get; }

    /// <summary>The short name given to <see cref="LabNetwork.AddHost"/>.</summary>
    public string Name { get; }

    /// <summary>The namespace name (run-unique).</summary>
    public string Namespace { get; }

    /// <summary>True for a switch made by <see cref="LabNetwork.AddSwitch"/> (bridge br0).</summary>
    public bool IsSwitch { get; }

    /// <summary>The bind-mounted namespace file that setns(2) opens.</summary>
    public string NamespacePath => $"/var/run/netns/{Namespace}";

    internal string NextSwitchPort() => $"p{Interlocked.Increment(ref _switchPorts)}";

    /// <summary>Adds an address (CIDR) to an interface. IPv6 addresses skip DAD (nodad) so they work at once.</summary>
    public void AddAddress(string interfaceName, string cidr)
    {
        var args = new List<string> { "-n", Namespace, "addr", "add", cidr, "dev", interfaceName };
        if (cidr.Contains(':', StringComparison.Ordinal))
        {
            args.Add("nodad");
        }

        LabNetwork.Ip(args);
    }

    /// <summary>Adds a route, e.g. <c>"default via 198.18.1.1"</c> or <c>"default via fdc6:1200:1::1"</c>.</summary>
    public void AddRoute(string route)
    {
        var words = route.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var family = words.Any(w => IPAddress.TryParse(w, out var a) && a.AddressFamily == AddressFamily.InterNetworkV6) ? "-6" : "-4";
        LabNetwork.Ip(new[] { family, "-n", Namespace, "route", "add" }.Concat(words).ToArray());
    }

    /// <summary>Sets an interface up.</summary>
    public void SetLinkUp(string interfaceName) => LabNetwork.Ip(["-n", Namespace, "link", "set", interfaceName, "up"]);

    /// <summary>Sets a sysctl inside this namespace (<c>ip netns exec NS sysctl -w key=value</c>).</summary>
    public void SetSysctl(string key, string value) =>
        CommandRunner.Run("ip", ["netns", "exec", Namespace, "sysctl", "-q", "-w", $"{key}={value}"]).EnsureSuccess();

    /// <summary>Turns on IPv4 and IPv6 forwarding.</summary>
    public void EnableForwarding()
    {
        SetSysctl("net.ipv4.ip_forward", "1");
        SetSysctl("net.ipv6.conf.all.forwarding", "1");
    }

    /// <summary>
    /// Gives this namespace its own /etc/hosts: <c>ip netns exec</c> bind-mounts
    /// /etc/netns/NS/hosts over /etc/hosts. Also writes an empty resolv.conf so name lookups never
    /// try a nameserver outside the lab. The lab removes both at teardown.
    /// </summary>
    public void SetHosts(IEnumerable<(string Name, IPAddress Address)> entries)
    {
        var dir = LabNetwork.EtcNetnsDirectory(this);
        var lines = entries.Select(e => $"{e.Address} {e.Name}").Prepend("127.0.0.1 localhost").Prepend("::1 localhost ip6-localhost");
        File.WriteAllLines(Path.Combine(dir, "hosts"), lines);
        File.WriteAllText(Path.Combine(dir, "resolv.conf"), "# lab namespace: no nameserver; names come from hosts\noptions attempts:1 timeout:1\n");
    }

    /// <summary>Starts a long-running program in this namespace; the lab stops it at teardown.</summary>
    public LabProcess Start(string file, params string[] args)
    {
        var psi = new ProcessStartInfo("ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("netns");
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(Namespace);
        psi.ArgumentList.Add(file);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        var process = Process.Start(psi) ?? throw new LabCommandException($"could not start {file} in {Namespace}");
        var labProcess = new LabProcess($"{Name}:{Path.GetFileName(file)}", CommandRunner.Describe(file, args), process);
        Network.Track(labProcess);
        return labProcess;
    }

    /// <summary>Runs a program in this namespace to completion; kills its process tree at the timeout.</summary>
    public Task<LabRunResult> RunAsync(string file, IReadOnlyList<string> args, TimeSpan timeout, string? stdin = null, CancellationToken cancellationToken = default) =>
        CommandRunner.RunAsync("ip", new[] { "netns", "exec", Namespace, file }.Concat(args).ToArray(), timeout, stdin, cancellationToken);

    /// <summary>The PIDs of every process whose network namespace is this host's (<c>ip netns pids</c>).</summary>
    public IReadOnlyList<int> ProcessIds() =>
        CommandRunner.Run("ip", ["netns", "pids", Namespace]).EnsureSuccess().StdOut
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => int.Parse(p, System.Globalization.CultureInfo.InvariantCulture))
            .ToArray();

    /// <summary>Opens a socket that lives in this namespace (created on a thread that entered it with setns(2)).</summary>
    public Socket OpenSocket(AddressFamily addressFamily, SocketType socketType, ProtocolType protocolType) =>
        NamespaceThread.Run(NamespacePath, () => new Socket(addressFamily, socketType, protocolType), "lab-setns");

    /// <summary>Connects a TCP socket from inside this namespace.</summary>
    public async Task<Socket> ConnectTcpAsync(IPEndPoint endPoint, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var socket = OpenSocket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            await socket.ConnectAsync(endPoint, cts.Token).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Polls until a TCP connect from inside this namespace to <paramref name="address"/>:<paramref name="port"/>
    /// succeeds; throws <see cref="TimeoutException"/> (with <paramref name="diagnostics"/>) at the deadline,
    /// or <see cref="LabCommandException"/> as soon as <paramref name="server"/> has exited.
    /// </summary>
    public async Task WaitForTcpPortAsync(
        IPAddress address, int port, TimeSpan timeout, Func<string>? diagnostics = null, LabProcess? server = null, CancellationToken cancellationToken = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        var endPoint = new IPEndPoint(address, port);
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            if (server is { HasExited: true })
            {
                throw new LabCommandException($"{server.Name} exited before {endPoint} accepted connections\n{server.Describe()}\n{diagnostics?.Invoke()}");
            }

            try
            {
                using var s = await ConnectTcpAsync(endPoint, TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                last = ex;
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        throw new TimeoutException(
            $"{endPoint} not accepting TCP from {Namespace} within {timeout.TotalSeconds:0.#} s (last error: {last?.Message})\n{diagnostics?.Invoke()}");
    }
}
