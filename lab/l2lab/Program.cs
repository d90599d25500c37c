using System.Net;
using L2Balance.Lab;

namespace L2Balance.Lab.Cli;

/// <summary>
/// l2lab: builds throw-away namespace labs. <c>clean</c> removes namespaces of dead runs;
/// <c>proxy-demo</c> runs out/l2proxy between a client and a target and fetches a file through it.
/// </summary>
internal static class Program
{
    private const string Usage = """
        usage: l2lab clean        remove lab namespaces left by dead runs
               l2lab proxy-demo   client -> l2proxy -> target, one curl through the proxy
               l2lab bench-proxy [--steady-seconds N] [--steady-subjects A,B]
                                  direct path vs l2proxy vs Dante vs microsocks (issue 3; about 12 minutes)
               l2lab cluster-demo three nodes (l2bal + l2proxy), real traffic, kill node 2, bring it back
               l2lab bench-failover [--kills N] [--fast-interval MS] [--fast-dead-after K] [--soak SECONDS]
                                                 time to cover vs keepalived and ucarp, balance, CPU, filter cost; --soak: false covers under load
               l2lab bench-advert-reject  l2bal's CPU per rejected advert frame, by reason (issue 14; about a minute)
               l2lab bench-weights  weighted ownership: Compute cost, set elements, movement; idle CPU with weights (issue 17; about 2 minutes)
               l2lab bench-ipv6  idle CPU per node with the IPv4 VIP only, both VIPs, the IPv6 VIP only, IPv4 only again (issue 17; about 3 minutes)
               l2lab bench-dns [--rate Q] [--seconds N] [--repeats R] [--kills K] [--generator dnsperf|lab]
                                  DNS behind the VIP vs dnsdist vs one unbound alone, CPU per subject, a node killed mid-run (issue 16; about 5 minutes)
               l2lab bench-migrate [--sessions N] [--repeats R] [--chunk BYTES] [--interval-ms MS] [--nodelay] [--list-during-drain]
                                  drain --migrate of a node with N long sessions: time to empty, pause at the ends, CPU per session (issue 19; about 3 minutes)
        """;

    public static async Task<int> Main(string[] args)
    {
        try
        {
            return args switch
            {
                ["clean"] => Clean(),
                ["proxy-demo"] => await ProxyDemoAsync().ConfigureAwait(false),
                ["cluster-demo"] => await ClusterDemo.RunAsync().ConfigureAwait(false),
                ["bench-failover", .. var benchArgs] => await BenchFailover.RunAsync(benchArgs).ConfigureAwait(false),
                ["cluster-up", .. var rest] => await ClusterCommands.UpAsync(rest).ConfigureAwait(false),
                ["bench-proxy", .. var proxyArgs] => await Bench.ProxyBench.RunAsync(proxyArgs).ConfigureAwait(false),
                ["bench-advert-reject"] => await Bench.AdvertRejectBench.RunAsync().ConfigureAwait(false),
                ["bench-weights"] => await Bench.WeightsBench.RunAsync().ConfigureAwait(false),
                ["bench-ipv6"] => await Bench.Ipv6Bench.RunAsync().ConfigureAwait(false),
                ["bench-dns", .. var dnsArgs] => await Bench.DnsBench.RunAsync(dnsArgs).ConfigureAwait(false),
                ["bench-migrate", .. var migrateArgs] => await Bench.MigrateBench.RunAsync(migrateArgs).ConfigureAwait(false),
                _ => Fail(Usage),
            };
        }
        catch (LabUnavailableException ex)
        {
            return Fail($"l2lab: {ex.Message}");
        }
        catch (Exception ex) when (ex is TimeoutException or LabCommandException)
        {
            return Fail($"l2lab: {ex.Message}");
        }
    }

    private static int Clean()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            return Fail("l2lab: lab tests need root: run as root (sudo)");
        }

        var removed = LabNetwork.CleanStale();
        Console.WriteLine(removed.Count == 0 ? "no stale lab namespaces" : $"removed {removed.Count}: {string.Join(' ', removed)}");
        return 0;
    }

    private static async Task<int> ProxyDemoAsync()
    {
        var l2proxy = LabBinaries.L2Proxy;
        var curl = LabBinaries.Require("curl", "curl");
        Console.WriteLine("building lab: client 198.18.1.2 -- 198.18.1.1 [proxy] 198.18.2.1 -- 198.18.2.2 target");
        await using var lab = await ProxyLab.CreateAsync().ConfigureAwait(false);
        Console.WriteLine($"namespaces: {string.Join(' ', lab.Network.Hosts.Select(h => h.Namespace))}");
        var servers = await TargetServers.StartAsync(lab.Target, TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        Console.WriteLine($"target: HTTP on :{TargetServers.HttpPort}, TCP echo :{TargetServers.TcpEchoPort}, UDP echo :{TargetServers.UdpEchoPort}");

        var proxy = lab.Proxy.Start(l2proxy, "--listen", "198.18.1.1:1080", "--allow", "198.18.1.0/24");
        Console.WriteLine($"started: {proxy.CommandLine} (pid {proxy.Id})");
        await lab.Client.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, 1080, TimeSpan.FromSeconds(15), proxy.Describe, proxy).ConfigureAwait(false);

        var url = $"http://{ProxyLab.TargetName}:{TargetServers.HttpPort}/{TargetServers.KnownFileName}";
        Console.WriteLine($"client$ curl --socks5-hostname 198.18.1.1:1080 {url}");
        var result = await lab.Client.RunAsync(
            curl, ["-sS", "--max-time", "10", "--socks5-hostname", "198.18.1.1:1080", url], TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        var ok = result.Succeeded && result.StdOut == servers.KnownFileContent;
        Console.WriteLine(ok
            ? $"OK: fetched {result.StdOut.Length} bytes through l2proxy, content matches"
            : $"FAILED: {result}");
        Console.WriteLine("l2proxy output:");
        Console.WriteLine(proxy.Log);
        Console.WriteLine("tearing down");
        return ok ? 0 : 1;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine(message);
        return 2;
    }
}
