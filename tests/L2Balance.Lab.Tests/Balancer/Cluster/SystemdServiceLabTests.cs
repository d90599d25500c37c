using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>
/// The daemons as their systemd units run them (docs/design.md#systemd), without systemd (the lab
/// has none as PID 1): l2bal as a user of its own with exactly CAP_NET_ADMIN, CAP_NET_RAW and
/// CAP_SYS_NICE (setpriv, as AmbientCapabilities= gives them), sd_notify to a socket the test binds
/// as systemd binds its own, l2proxy started before the VIP exists and reloaded by SIGHUP.
/// Each test builds its own small lab.
/// </summary>
public sealed class SystemdServiceLabTests
{
    /// <summary>A user and group no account has: nothing but the capabilities given.</summary>
    private const int ServiceUid = 4242;

    /// <summary>CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_SYS_NICE (23), as /proc/PID/status prints a set.</summary>
    private const string ServiceCaps = "0000000000803000";

    private const string NoCaps = "0000000000000000";

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task CapabilityOnly_L2BalAsUserWithNetAdminNetRawSysNice_ServesCoversNotifiesAndGivesExecProbeNoCapability()
    {
        await using var lab = await ClusterLab.CreateAsync(2, 4).WithTimeout(Deadline);
        var dir = OpenDirectory("l2bal-caps-");
        var key = Path.Combine(dir, "cluster.key");
        File.WriteAllText(key, Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)) + "\n");
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Run("chown", $"{ServiceUid}:{ServiceUid}", key);
        using var notify1 = new NotifyListener(Path.Combine(dir, "notify-1"));
        using var notify2 = new NotifyListener(Path.Combine(dir, "notify-2"));
        var node1 = StartCapabilityOnly(lab, 1, key, notify1.Path, dir);
        var node2 = StartCapabilityOnly(lab, 2, key, notify2.Path, dir);
        try
        {
            var up = await WaitForStatusAsync(lab, [1, 2], s => s.State == "active" && s.Healthy && s.Held == ShareOf(s.NodeId, s.Buckets), "both nodes serve their share", ServiceUid);
            // The daemon runs as the service user with exactly its three capabilities, none of them root's.
            var own = File.ReadAllText($"/proc/{node2.Id}/status");
            Assert.Contains($"\nUid:\t{ServiceUid}\t{ServiceUid}\t{ServiceUid}\t{ServiceUid}\n", own, StringComparison.Ordinal);
            Assert.Contains($"\nCapEff:\t{ServiceCaps}\n", own, StringComparison.Ordinal);
            // The exec: probe passed (each node healthy) and ran with no capability at all.
            var probe = File.ReadAllText(Path.Combine(dir, "caps-2"));
            foreach (var set in new[] { "CapInh", "CapPrm", "CapEff", "CapAmb" })
            {
                Assert.Contains($"{set}:\t{NoCaps}\n", probe, StringComparison.Ordinal);
            }
            // READY=1 first, with the state; then STATUS= as the node claimed; WATCHDOG=1 at half of WATCHDOG_USEC.
            var ready = await notify2.WaitForAsync(m => m.StartsWith("READY=1\nSTATUS=", StringComparison.Ordinal), "READY=1");
            Assert.Equal(ready, notify2.Messages[0]);
            await notify2.WaitForAsync(m => m == $"STATUS=active, holds {up[2].Held} of {up[2].Buckets} buckets", "the status with its share");
            await notify2.WaitForAsync(m => m == "WATCHDOG=1", "a watchdog ping");

            // Covers: node 1 killed, node 2 (capabilities only) takes every bucket.
            node1.Kill(LabSignals.Kill);
            await WaitForStatusAsync(lab, [2], s => s.Held == s.Buckets, "node 2 covers node 1", ServiceUid);
            await notify2.WaitForAsync(m => m.StartsWith("STATUS=active, holds ", StringComparison.Ordinal) && m.EndsWith($"holds {up[2].Buckets} of {up[2].Buckets} buckets", StringComparison.Ordinal), "the status of the cover");

            // A clean leave as that user: STOPPING=1, exit 0, the VIP gone from lo.
            node2.Stop();
            Assert.True(await node2.WaitForExitAsync(TimeSpan.FromSeconds(10)), lab.Describe());
            Assert.Equal(0, node2.ExitCode);
            await notify2.WaitForAsync(m => m == "STOPPING=1", "STOPPING=1");
            var lo = await lab.RunOnNode(2, "ip", ["-4", "addr", "show", "dev", "lo"]).WithTimeout(Deadline);
            Assert.DoesNotContain(ClusterLab.VipAddress + "/", lo.StdOut, StringComparison.Ordinal);
        }
        catch (Exception e) when (e is not LabUnavailableException)
        {
            throw new InvalidOperationException($"{e.Message}\nnotify 2: {string.Join(" | ", notify2.Messages)}\n{lab.Describe()}", e);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task ProxyWithWorkers_StartedBeforeTheVipExists_ListensNotifiesOnceAndSurvivesReload()
    {
        await using var lab = await ClusterLab.CreateAsync(1, 4).WithTimeout(Deadline);
        var dir = OpenDirectory("l2proxy-notify-");
        using var notify = new NotifyListener(Path.Combine(dir, "notify"));
        try
        {
            // No VIP on the node yet: IP_FREEBIND lets the workers bind it anyway.
            string[] proxy =
            [
                $"NOTIFY_SOCKET={notify.Path}", LabBinaries.L2Proxy, "--listen", $"{ClusterLab.VipAddress}:{ClusterLab.ProxyPort}",
                "--allow", ClusterLab.ClientSubnet, "--allow", $"{ClusterLab.VipAddress}/32", "--workers", "2",
            ];
            var supervisor = lab.Nodes[0].Start("env", proxy);
            await notify.WaitForAsync(m => m == "READY=1", "READY=1 once both workers listen");
            Assert.False(supervisor.HasExited, lab.Describe());
            var listening = await lab.RunOnNode(1, "ss", ["-Htln", $"sport = :{ClusterLab.ProxyPort}"]).WithTimeout(Deadline);
            Assert.Equal(2, listening.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);

            // systemctl reload: RELOADING=1 then READY=1, and the supervisor keeps running (SIGHUP used to end it).
            supervisor.Kill(1);
            await notify.WaitForAsync(m => m.StartsWith("RELOADING=1\nMONOTONIC_USEC=", StringComparison.Ordinal), "RELOADING=1");
            await notify.WaitForAsync(m => m == "READY=1", "READY=1 after the reload", after: 1);
            Assert.False(supervisor.HasExited, lab.Describe());

            // Then l2bal: its SOCKS5 probe of the VIP passes through the proxy that was there first.
            lab.StartBalancer(1, "--health", $"socks5://{ClusterLab.VipAddress}:{ClusterLab.ProxyPort}");
            await WaitForStatusAsync(lab, [1], s => s.State == "active" && s.Healthy && s.Held == s.Buckets, "the node serves through the early proxy");
            supervisor.Stop();
            Assert.True(await supervisor.WaitForExitAsync(TimeSpan.FromSeconds(10)), lab.Describe());
            await notify.WaitForAsync(m => m == "STOPPING=1", "STOPPING=1");
            Assert.Single(notify.Messages, m => m == "STOPPING=1");
        }
        catch (Exception e) when (e is not LabUnavailableException)
        {
            throw new InvalidOperationException($"{e.Message}\nnotify: {string.Join(" | ", notify.Messages)}\n{lab.Describe()}", e);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static LabProcess StartCapabilityOnly(ClusterLab lab, int k, string key, string notifySocket, string dir) =>
        lab.Nodes[k - 1].Start("env",
        [
            $"NOTIFY_SOCKET={notifySocket}", "WATCHDOG_USEC=1000000",
            "setpriv", $"--reuid={ServiceUid}", $"--regid={ServiceUid}", "--clear-groups",
            "--inh-caps=+net_admin,+net_raw,+sys_nice", "--ambient-caps=+net_admin,+net_raw,+sys_nice",
            ClusterBinaries.L2Bal, "run", "--interface", "eth0", "--vip", ClusterLab.VipCidr,
            "--node-id", k.ToString(CultureInfo.InvariantCulture), "--node-count", "2", "--key-file", key,
            "--advert-interval", "50ms", "--dead-after", "6",
            // Written aside and renamed: the test reads the file while the probe rewrites it every 100 ms (it once read it empty).
            "--health", $"exec:grep ^Cap /proc/self/status > {dir}/caps-{k}.new && mv {dir}/caps-{k}.new {dir}/caps-{k}",
        ]);

    /// <summary>A directory the service user can write to (its probe's output, its notify socket).</summary>
    private static string OpenDirectory(string prefix)
    {
        var dir = Directory.CreateTempSubdirectory(prefix).FullName;
        File.SetUnixFileMode(dir, (UnixFileMode)0x1FF); // 0777
        return dir;
    }

    private static int ShareOf(int nodeId, int buckets) => BalancerClusterFixtureBase.ShareOf(nodeId, 2, buckets);

    private static async Task<IReadOnlyDictionary<int, BalancerStatus>> WaitForStatusAsync(
        ClusterLab lab, int[] nodes, Func<BalancerStatus, bool> condition, string what, int? asUid = null)
    {
        // The client trusts only a daemon run by root, user l2bal or itself (docs/design.md#control-and-status):
        // a daemon run as a uid of no account is asked by that uid.
        var (file, args) = asUid is { } uid
            ? ("setpriv", new[] { $"--reuid={uid}", $"--regid={uid}", "--clear-groups", ClusterBinaries.L2Bal, "status", "--json" })
            : (ClusterBinaries.L2Bal, new[] { "status", "--json" });
        var deadline = DateTime.UtcNow + Deadline;
        var last = "(no status yet)";
        while (DateTime.UtcNow < deadline)
        {
            var statuses = new Dictionary<int, BalancerStatus>();
            foreach (var k in nodes)
            {
                var result = await lab.RunOnNode(k, file, args).WithTimeout(Deadline);
                if (result.Succeeded)
                {
                    statuses[k] = BalancerStatus.Parse(result.StdOut);
                }
                last = result.ToString();
            }
            if (statuses.Count == nodes.Length && statuses.Values.All(condition))
            {
                return statuses;
            }
            await Task.Delay(200);
        }
        throw new TimeoutException($"not reached: {what}\nlast status: {last}");
    }

    private static void Run(string file, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(file, args)) ?? throw new InvalidOperationException($"could not start {file}");
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
    }

    /// <summary>A unix datagram socket bound at a path, as systemd's notify socket; collects every message.</summary>
    private sealed class NotifyListener : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        private readonly List<string> _messages = [];
        private readonly Task _receiving;
        private volatile bool _disposed;

        public NotifyListener(string path)
        {
            Path = path;
            _socket.ReceiveTimeout = 200;
            _socket.Bind(new UnixDomainSocketEndPoint(path));
            File.SetUnixFileMode(path, (UnixFileMode)0x1B6); // 0666: the service user sends to it
            _receiving = Task.Run(Receive);
        }

        public string Path { get; }

        public IReadOnlyList<string> Messages
        {
            get
            {
                lock (_messages)
                {
                    return [.. _messages];
                }
            }
        }

        /// <summary>Waits for a message matching <paramref name="match"/> (the <paramref name="after"/>-th such one, counting from 0); returns it.</summary>
        public async Task<string> WaitForAsync(Func<string, bool> match, string what, int after = 0)
        {
            var deadline = DateTime.UtcNow + Deadline;
            while (DateTime.UtcNow < deadline)
            {
                if (Messages.Where(match).Skip(after).FirstOrDefault() is { } found)
                {
                    return found;
                }
                await Task.Delay(50);
            }
            throw new TimeoutException($"no {what} on the notify socket; got: {string.Join(" | ", Messages)}");
        }

        private void Receive()
        {
            var buffer = new byte[4096];
            while (!_disposed)
            {
                try
                {
                    var n = _socket.Receive(buffer);
                    lock (_messages)
                    {
                        _messages.Add(Encoding.UTF8.GetString(buffer, 0, n));
                    }
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
                {
                    // Looks again whether the test is over.
                }
            }
        }

        public void Dispose()
        {
            _disposed = true;
            _receiving.Wait(TimeSpan.FromSeconds(5));
            _socket.Dispose();
        }
    }
}
