using System.Net;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// Builds the client—proxy—target lab once, starts the target servers and the proxy under test
/// on 198.18.1.1:1080 and [fdc6:1200:1::1]:1080, and waits for readiness against deadlines.
/// Tears everything down even when construction fails (docs/conventions.md §26).
/// </summary>
public sealed class ProxyLabFixture : IAsyncLifetime
{
    public const int MainPort = 1080;

    /// <summary>The main l2proxy's Prometheus endpoint, on loopback inside the proxy namespace.</summary>
    public const int MetricsPort = 9180;
    public static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(20);
    public static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(30);

    private ProxyLab? _lab;

    public ProxyLab Lab => _lab ?? throw new InvalidOperationException("lab not built");

    public TargetServers Servers { get; private set; } = null!;

    public LabProcess MainProxy { get; private set; } = null!;

    public string Curl { get; private set; } = null!;

    public string Ncat { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _lab = await ProxyLab.CreateAsync().WithTimeout(StepTimeout);
        try
        {
            Curl = LabBinaries.Require("curl", "curl");
            Ncat = LabBinaries.Require("ncat", "ncat");
            Servers = await TargetServers.StartAsync(Lab.Target, ReadyTimeout).WithTimeout(StepTimeout);
            MainProxy = StartMainProxy();
            await Lab.Client.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, MainPort, ReadyTimeout, Describe, MainProxy).WithTimeout(StepTimeout);
        }
        catch
        {
            _lab.Dispose();
            throw;
        }
    }

    public Task DisposeAsync()
    {
        _lab?.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>Every daemon's captured output: attach to assertion messages.</summary>
    public string Describe() => $"proxy under test: {ProxyUnderTest.Kind}\n{_lab?.Network.DescribeProcesses()}";

    /// <summary>Runs curl in the client namespace (10 s transfer limit).</summary>
    public Task<LabRunResult> CurlAsync(params string[] args) =>
        Lab.Client.RunAsync(Curl, ["-sS", "--max-time", "10", .. args], TimeSpan.FromSeconds(20)).WithTimeout(StepTimeout);

    /// <summary>Starts a second instance with RFC 1929 users (file made with <c>l2proxy passwd</c>).</summary>
    public async Task<LabProcess> StartUsersInstanceAsync(int port, string user, string password)
    {
        LabProcess process;
        if (ProxyUnderTest.Kind == ProxyKind.L2Proxy)
        {
            var dir = Lab.Network.CreateTempDirectory($"users{port}");
            var users = Path.Combine(dir, "users");
            var made = await Lab.Proxy.RunAsync(LabBinaries.L2Proxy, ["passwd", "--users", users, user], TimeSpan.FromSeconds(20), password + "\n")
                .WithTimeout(StepTimeout);
            Assert.True(made.Succeeded, $"l2proxy passwd failed: {made}");
            process = Lab.Proxy.Start(LabBinaries.L2Proxy, "--listen", $"198.18.1.1:{port}", "--external", "198.18.2.1",
                "--allow", "198.18.1.0/24", "--users", users);
        }
        else
        {
            // Dante authenticates against system accounts only; microsocks takes one user on its command line.
            process = Lab.Proxy.Start(LabBinaries.Require("microsocks", "microsocks"), "-i", "198.18.1.1", "-p", $"{port}", "-u", user, "-P", password);
        }

        await Lab.Client.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, port, ReadyTimeout, Describe, process).WithTimeout(StepTimeout);
        return process;
    }

    /// <summary>Starts a second instance from a Dante-syntax configuration file.</summary>
    public async Task<LabProcess> StartConfigInstanceAsync(int port, string conf)
    {
        var dir = Lab.Network.CreateTempDirectory($"conf{port}");
        var path = Path.Combine(dir, "sockd.conf");
        LabProcess process;
        if (ProxyUnderTest.Kind == ProxyKind.L2Proxy)
        {
            await File.WriteAllTextAsync(path, conf);
            process = Lab.Proxy.Start(LabBinaries.L2Proxy, "--config", path);
        }
        else
        {
            await File.WriteAllTextAsync(path, ProxyUnderTest.ForDanted(conf));
            process = Lab.Proxy.Start(ProxyUnderTest.Danted, "-f", path);
        }

        await Lab.Client.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, port, ReadyTimeout, Describe, process).WithTimeout(StepTimeout);
        return process;
    }

    private LabProcess StartMainProxy()
    {
        switch (ProxyUnderTest.Kind)
        {
            case ProxyKind.Sockd:
                var dir = Lab.Network.CreateTempDirectory("sockd");
                var path = Path.Combine(dir, "sockd.conf");
                File.WriteAllText(path, ProxyUnderTest.ForDanted(
                    """
                    internal: 198.18.1.1 port = 1080
                    internal: fdc6:1200:1::1 port = 1080
                    external: 198.18.2.1
                    external: fdc6:1200:2::1
                    timeout.negotiate: 2
                    client pass { from: 198.18.1.0/24 to: 0/0 }
                    client pass { from: fdc6:1200:1::/64 to: 0/0 }
                    socks pass { from: 0/0 to: 0/0 }

                    """));
                return Lab.Proxy.Start(ProxyUnderTest.Danted, "-f", path);
            case ProxyKind.Microsocks:
                return Lab.Proxy.Start(LabBinaries.Require("microsocks", "microsocks"), "-i", "198.18.1.1", "-p", $"{MainPort}");
            default:
                return Lab.Proxy.Start(LabBinaries.L2Proxy,
                    "--listen", "198.18.1.1:1080", "--listen", "[fdc6:1200:1::1]:1080",
                    "--external", "198.18.2.1", "--external", "fdc6:1200:2::1",
                    "--allow", "198.18.1.0/24", "--allow", "fdc6:1200:1::/64",
                    "--negotiate-timeout", "2s", "--metrics", $"127.0.0.1:{MetricsPort}");
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ProxyLabGroup : ICollectionFixture<ProxyLabFixture>
{
    public const string Name = "proxy-lab";
}
