using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests;

/// <summary>
/// The README's by-hand quickstart, run exactly as printed (issue 15): its three code blocks are read
/// from README.md, only the marked placeholder <c>&lt;K&gt;</c> is replaced, and each command runs
/// as root on three lab nodes standing in for three machines: each node is a network namespace with
/// a mount namespace of its own whose /etc is an overlay (writes land in the test's directory, never
/// in the machine's /etc), and <c>l2bal</c> and <c>l2proxy</c> on the PATH are the builds under test.
/// The key is copied from node 1 to the others as an operator would, owner and mode kept.
/// </summary>
public sealed partial class ReadmeQuickstartTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private const int NodeCount = 3;

    /// <summary>The README's placeholder for the node id, the only text the test replaces.</summary>
    private const string NodeIdPlaceholder = "<K>";

    /// <summary>The README's key path (the test copies the key there on nodes 2 and 3).</summary>
    private const string KeyPath = "/etc/l2balance/l2bal.key";

    [Fact]
    public void ByHandQuickstart_InTheReadme_HasItsThreeBlocksWithOnlyTheNodeIdPlaceholder()
    {
        var blocks = Blocks();
        Assert.Equal(["mkdir -p /etc/l2balance", $"l2bal genkey --output {KeyPath}"], blocks.Once);
        Assert.Equal(2, blocks.EveryNode.Count);
        Assert.StartsWith("l2proxy ", blocks.EveryNode[0], StringComparison.Ordinal);
        Assert.StartsWith("l2bal run ", blocks.EveryNode[1], StringComparison.Ordinal);
        Assert.All(blocks.EveryNode, c => Assert.Contains(NodeIdPlaceholder, c, StringComparison.Ordinal));
        Assert.NotEmpty(blocks.Check);
        foreach (var command in blocks.Once.Concat(blocks.EveryNode).Concat(blocks.Check))
        {
            // No placeholder the test would not replace: what runs is what the README prints.
            Assert.Empty(Placeholder().Matches(command.Replace(NodeIdPlaceholder, "1", StringComparison.Ordinal)));
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task ByHandQuickstart_AsPrintedOnThreeNodes_FormsAClusterThatServesEachClientFromTheNodeOwnerNames()
    {
        var blocks = Blocks();
        var lab = await ClusterLab.CreateAsync(NodeCount, 6).WithTimeout(Deadline);
        var dir = Directory.CreateTempSubdirectory("l2b-readme-").FullName;
        try
        {
            var bin = Directory.CreateDirectory(Path.Combine(dir, "bin")).FullName;
            File.CreateSymbolicLink(Path.Combine(bin, "l2bal"), ClusterBinaries.L2Bal);
            File.CreateSymbolicLink(Path.Combine(bin, "l2proxy"), LabBinaries.L2Proxy);
            var machines = new Machine[NodeCount];
            for (var k = 1; k <= NodeCount; k++)
            {
                machines[k - 1] = await Machine.StartAsync(lab.Nodes[k - 1], Path.Combine(dir, $"node{k}"), bin);
            }

            // The key, on node 1; then copied to the others with owner and mode (cp -p), as the README says.
            foreach (var command in blocks.Once)
            {
                (await machines[0].RunAsync(command)).EnsureSuccess();
            }
            var made = machines[0].UpperFile(KeyPath);
            Assert.True(File.Exists(made), $"the README's genkey left no {KeyPath}");
            for (var k = 2; k <= NodeCount; k++)
            {
                (await machines[k - 1].RunAsync($"mkdir -p {Path.GetDirectoryName(KeyPath)} && cp -p {made} {KeyPath}")).EnsureSuccess();
            }

            // Every node: the two long-running commands, each as its own process ("a terminal of its own").
            var daemons = new List<LabProcess>();
            for (var k = 1; k <= NodeCount; k++)
            {
                foreach (var command in blocks.EveryNode)
                {
                    daemons.Add(machines[k - 1].Start(command.Replace(NodeIdPlaceholder, k.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)));
                }
            }

            try
            {
                await WaitForClusterAsync(lab, daemons);

                // The check block, as printed, on every node.
                string owner = "";
                for (var k = 1; k <= NodeCount; k++)
                {
                    foreach (var command in blocks.Check)
                    {
                        var result = await machines[k - 1].RunAsync(command);
                        Assert.True(result.Succeeded, result.ToString());
                        owner += result.StdOut;
                    }
                }
                Assert.Matches(OwnerLine(), owner);

                // Each client address is served by the node that `l2bal owner` names, through the VIP.
                var served = new HashSet<int>();
                foreach (var client in lab.ClientAddresses)
                {
                    var named = await OwnerOfAsync(machines[0], client);
                    var bound = await ConnectThroughVipAsync(lab, client);
                    Assert.Equal(named, lab.NodeOf(bound));
                    served.Add(named);
                }
                Assert.True(served.Count > 1, $"all {lab.ClientAddresses.Count} clients on one node: the buckets did not spread ({string.Join(", ", served)})");
            }
            catch (Exception e) when (e is not LabUnavailableException)
            {
                throw new InvalidOperationException($"{e.Message}\n{string.Join('\n', daemons.Select(d => d.Describe()))}", e);
            }
            finally
            {
                foreach (var daemon in daemons)
                {
                    daemon.Stop();
                }
            }
        }
        finally
        {
            // The overlays live in the holders' mount namespaces: gone with them when the lab stops its processes.
            await lab.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Every node active and healthy with its peers active, read from <c>l2bal status --json</c>.</summary>
    private static async Task WaitForClusterAsync(ClusterLab lab, IReadOnlyList<LabProcess> daemons)
    {
        var deadline = DateTime.UtcNow + Deadline;
        var last = "(no status yet)";
        while (DateTime.UtcNow < deadline)
        {
            Assert.DoesNotContain(daemons, d => d.HasExited);
            var up = 0;
            foreach (var k in Enumerable.Range(1, NodeCount))
            {
                var result = await lab.RunOnNode(k, ClusterBinaries.L2Bal, ["status", "--json"]).WithTimeout(Deadline);
                if (!result.Succeeded)
                {
                    last = result.ToString();
                    continue;
                }
                var s = BalancerStatus.Parse(result.StdOut);
                last = s.Json;
                if (s.State == "active" && s.Healthy && s.Held > 0 && s.PeerStates.Count == NodeCount - 1
                    && s.PeerStates.Values.All(p => p == "active") && s.Owners.GetValueOrDefault("none") == 0)
                {
                    up++;
                }
            }
            if (up == NodeCount)
            {
                return;
            }
            await Task.Delay(100);
        }
        Assert.Fail($"the README's cluster did not come up within {Deadline.TotalSeconds} s; last status:\n{last}");
    }

    private static async Task<int> OwnerOfAsync(Machine machine, IPAddress client)
    {
        var result = await machine.RunAsync($"l2bal owner {client}");
        Assert.True(result.Succeeded, result.ToString());
        var match = OwnerLine().Match(result.StdOut);
        Assert.True(match.Success, result.StdOut);
        return int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>A SOCKS5 CONNECT from <paramref name="client"/> to the target through the VIP; the reply's BND.ADDR names the serving node.</summary>
    private static async Task<IPEndPoint> ConnectThroughVipAsync(ClusterLab lab, IPAddress client)
    {
        using var socket = lab.Client.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(client, 0));
        using var cts = new CancellationTokenSource(Deadline);
        await socket.ConnectAsync(lab.ProxyEndPoint, cts.Token);
        var (code, bound) = await Socks5Client.HandshakeAsync(socket, Socks5Client.Connect, new IPEndPoint(ClusterLab.TargetAddress, TargetServers.HttpPort), cts.Token);
        Assert.Equal(0, code);
        return bound;
    }

    /// <summary>The README's three by-hand blocks: commands with continuation lines joined, comments and blank lines dropped.</summary>
    private static (IReadOnlyList<string> Once, IReadOnlyList<string> EveryNode, IReadOnlyList<string> Check) Blocks()
    {
        var readme = File.ReadAllText(Path.Combine(LabBinaries.RepoRoot, "README.md"));
        return (Block(readme, "once"), Block(readme, "every node"), Block(readme, "check"));
    }

    private static List<string> Block(string readme, string name)
    {
        var marker = $"<!-- quickstart-by-hand: {name} -->";
        var at = readme.IndexOf(marker, StringComparison.Ordinal);
        Assert.True(at >= 0, $"README.md has no '{marker}'");
        var open = readme.IndexOf("```sh\n", at, StringComparison.Ordinal);
        Assert.True(open >= 0 && readme[(at + marker.Length)..open].Trim().Length == 0, $"'{marker}' is not followed by a ```sh block");
        var close = readme.IndexOf("\n```", open + 5, StringComparison.Ordinal);
        var commands = new List<string>();
        var pending = "";
        foreach (var raw in readme[(open + 6)..close].Split('\n'))
        {
            var line = raw.TrimEnd();
            if (pending.Length == 0 && (line.Length == 0 || line.TrimStart().StartsWith('#')))
            {
                continue;
            }
            if (line.EndsWith('\\'))
            {
                pending += line[..^1].Trim() + " ";
                continue;
            }
            commands.Add(pending + line.Trim());
            pending = "";
        }
        Assert.Equal("", pending);
        return commands;
    }

    [GeneratedRegex(@"<[A-Z][A-Z0-9-]*>")]
    private static partial Regex Placeholder();

    [GeneratedRegex(@"bucket \d+ owner (\d+)")]
    private static partial Regex OwnerLine();

    /// <summary>
    /// A lab node as a machine of its own: a process that holds a mount namespace (made inside the
    /// node's network namespace, so its /sys is the node's) with an overlay on /etc whose upper
    /// layer is this test's directory. Every command enters that mount namespace with nsenter and
    /// runs under bash with the builds under test first on the PATH.
    /// </summary>
    private sealed class Machine
    {
        private readonly LabHost _host;
        private readonly string _upper;
        private readonly string _bin;
        private readonly LabProcess _holder;

        private Machine(LabHost host, string upper, string bin, LabProcess holder)
        {
            _host = host;
            _upper = upper;
            _bin = bin;
            _holder = holder;
        }

        public static async Task<Machine> StartAsync(LabHost host, string dir, string bin)
        {
            var upper = Directory.CreateDirectory(Path.Combine(dir, "upper")).FullName;
            var work = Directory.CreateDirectory(Path.Combine(dir, "work")).FullName;
            // unshare and sh exec in place: the holder's PID is the sleep's, stopped by the lab at teardown (bounded anyway).
            var holder = host.Start("unshare", "--mount", "--propagation", "private", "sh", "-c",
                $"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc && exec sleep 600");
            var deadline = DateTime.UtcNow + Deadline;
            while (!File.Exists($"/proc/{holder.Id}/mountinfo") || !File.ReadAllText($"/proc/{holder.Id}/mountinfo").Contains(" /etc ", StringComparison.Ordinal)
                || !File.ReadAllText($"/proc/{holder.Id}/cmdline").StartsWith("sleep", StringComparison.Ordinal))
            {
                Assert.False(holder.HasExited, $"the node's /etc overlay could not be made:\n{holder.Describe()}");
                Assert.True(DateTime.UtcNow < deadline, $"the node's /etc overlay was not mounted in time:\n{holder.Describe()}");
                await Task.Delay(20);
            }
            return new Machine(host, upper, bin, holder);
        }

        /// <summary>Where a file this machine wrote under /etc lies on the real file system.</summary>
        public string UpperFile(string etcPath) => Path.Combine(_upper, Path.GetRelativePath("/etc", etcPath));

        /// <summary>Runs a command to completion, as the README's operator would at a root shell.</summary>
        public Task<LabRunResult> RunAsync(string command) =>
            _host.RunAsync("nsenter", Enter(command), Deadline).WithTimeout(Deadline + TimeSpan.FromSeconds(5));

        /// <summary>Starts a long-running command; bash execs it, so the process's PID is the daemon's.</summary>
        public LabProcess Start(string command) => _host.Start("nsenter", [.. Enter("exec " + command)]);

        private string[] Enter(string command) =>
            ["--target", _holder.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), "--mount", "--",
                "env", $"PATH={_bin}:/usr/sbin:/usr/bin:/sbin:/bin", "bash", "-c", command];
    }
}
