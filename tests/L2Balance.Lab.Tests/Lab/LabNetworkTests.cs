using System.Net;
using System.Net.Sockets;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Lab;

/// <summary>The lab library itself: namespaces, veths, setns sockets, processes, teardown, stale cleanup.</summary>
public sealed class LabNetworkTests
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(20);

    [SkippableFact(typeof(LabUnavailableException))]
    public void RepoRoot_FromTheTestBinary_HoldsTheSolution()
    {
        Assert.True(File.Exists(Path.Combine(LabBinaries.RepoRoot, "L2Balance.sln")));
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public void Require_MissingTool_NamesDebianPackage()
    {
        var ex = Assert.Throws<LabUnavailableException>(() => LabBinaries.Require("l2b-no-such-tool", "no-such-package"));

        Assert.Contains("apt-get install -y no-such-package", ex.Message, StringComparison.Ordinal);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Describe_LongLog_ShowsItsLastLinesWhileLogKeepsAll()
    {
        using var lab = LabNetwork.Create();
        var host = lab.AddHost("a");
        var printer = host.Start("seq", "1", "300");
        Assert.True(await printer.WaitForExitAsync(Step), printer.Describe());

        var described = printer.Describe();
        var lines = described.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("=== ", lines[0], StringComparison.Ordinal);
        Assert.Contains($"[{300 - LabProcess.DescribedLines} earlier lines left out]", described, StringComparison.Ordinal);
        Assert.EndsWith(" 300", lines[^1], StringComparison.Ordinal);
        Assert.EndsWith(" 101", lines[2], StringComparison.Ordinal);
        Assert.Equal(300, printer.Log.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Contains(" 1\n", lab.ProcessLogs(), StringComparison.Ordinal);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Link_TwoHosts_ConnectsThemUntilTeardownRemovesEverything()
    {
        string[] namespaces;
        var threadNamespace = NetNamespaceOfThisThread();
        using (var lab = LabNetwork.Create())
        {
            var a = lab.AddHost("a");
            var b = lab.AddHost("b");
            lab.Link(a, "eth0", b, "eth0");
            a.AddAddress("eth0", "198.18.9.1/24");
            a.AddAddress("eth0", "fdc6:1200:9::1/64");
            b.AddAddress("eth0", "198.18.9.2/24");
            b.AddAddress("eth0", "fdc6:1200:9::2/64");
            namespaces = [a.Namespace, b.Namespace];
            b.SetHosts([("a.lab", IPAddress.Parse("198.18.9.1"))]);

            // ip netns exec bind-mounts /etc/netns/NS/hosts over /etc/hosts.
            var lookup = await b.RunAsync("getent", ["hosts", "a.lab"], Step).WithTimeout();
            Assert.True(lookup.Succeeded && lookup.StdOut.StartsWith("198.18.9.1 ", StringComparison.Ordinal), lookup.ToString());

            // A socket made inside a's namespace can bind a's address, which the root namespace lacks.
            using var listener = a.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Parse("198.18.9.1"), 9000));
            listener.Listen();
            await b.WaitForTcpPortAsync(IPAddress.Parse("198.18.9.1"), 9000, Step).WithTimeout();
            using var client = await b.ConnectTcpAsync(new IPEndPoint(IPAddress.Parse("198.18.9.1"), 9000), Step).WithTimeout();
            using var accepted = await listener.AcceptAsync().WithTimeout();
            Assert.Equal(IPAddress.Parse("198.18.9.2"), ((IPEndPoint)accepted.RemoteEndPoint!).Address);

            // IPv6 works at once (no DAD in the lab).
            using var listener6 = a.OpenSocket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            listener6.Bind(new IPEndPoint(IPAddress.Parse("fdc6:1200:9::1"), 9000));
            listener6.Listen();
            using var client6 = await b.ConnectTcpAsync(new IPEndPoint(IPAddress.Parse("fdc6:1200:9::1"), 9000), Step).WithTimeout();

            var sleeper = b.Start("sleep", "300");
            Assert.False(sleeper.HasExited);
            Assert.Equal(threadNamespace, NetNamespaceOfThisThread());
        }

        var list = LabNetwork.ListNamespaces();
        foreach (var ns in namespaces)
        {
            Assert.DoesNotContain(ns, list);
            Assert.False(Directory.Exists($"/etc/netns/{ns}"));
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public void Create_StaleNamespaceOfADeadRun_IsRemovedAndOthersKept()
    {
        // pid_max is at most 2^22, so this PID is never alive.
        const string stale = "l2b4194999xbeef-stale";
        const string foreign = "l2bforeign-keepme";
        try
        {
            Ip("netns", "add", stale);
            Ip("netns", "add", foreign);

            using var lab = LabNetwork.Create();

            var list = LabNetwork.ListNamespaces();
            Assert.DoesNotContain(stale, list);
            Assert.Contains(foreign, list);
        }
        finally
        {
            Ip("netns", "del", stale);
            Ip("netns", "del", foreign);
        }
    }

    private static string NetNamespaceOfThisThread() => new FileInfo("/proc/thread-self/ns/net").LinkTarget ?? string.Empty;

    private static void Ip(params string[] args)
    {
        using var ip = System.Diagnostics.Process.Start("ip", args);
        Assert.True(ip.WaitForExit(Step), "ip did not finish");
    }
}
