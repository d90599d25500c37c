using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy.Gssapi;

/// <summary>
/// The proxy lab plus a KDC namespace behind the client (198.18.3.0/24): realm L2LAB.TEST, users alice and bob,
/// the service socks/vip.l2lab.test whose keytab l2proxy reads (gssapi.keytab in the client rule, as Dante's
/// redundancy notes give it), and l2proxy with <c>socksmethod: gssapi</c> alone.
/// </summary>
public sealed partial class GssapiLabFixture : IAsyncLifetime
{
    public const int Port = 1080;
    public const int MetricsPort = 9180;
    public const string Service = "socks@vip.l2lab.test";
    public const string AlicePassword = "alice-lab-pw";
    public const string BobPassword = "bob-lab-pw";
    public static readonly IPAddress KdcAddress = IPAddress.Parse("198.18.3.2");
    public static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The proxy's allowed clock skew (krb5.conf clockskew): short, so a captured token ages past it within a test.</summary>
    public const int ClockSkewSeconds = 2;

    private ProxyLab? _lab;

    public ProxyLab Lab => _lab ?? throw new InvalidOperationException("lab not built");

    public KerberosRealm Realm { get; private set; } = null!;

    public LabProcess Proxy { get; private set; } = null!;

    public TargetServers Servers { get; private set; } = null!;

    /// <summary>Alice's and Bob's credential caches (kinit from their passwords).</summary>
    public string AliceCache { get; private set; } = null!;

    public string BobCache { get; private set; } = null!;

    public static string ClientScript => Path.Combine(LabBinaries.RepoRoot, "tests", "L2Balance.Lab.Tests", "Proxy", "Gssapi", "rfc1961_client.py");

    public async Task InitializeAsync()
    {
        ProxyUnderTest.SkipUnlessL2Proxy("GSS-API (RFC 1961)");
        _lab = await ProxyLab.CreateAsync().WithTimeout(StepTimeout);
        try
        {
            LabBinaries.Require("python3", "python3-gssapi");
            var kdcHost = Lab.Network.AddHost("kdc");
            Lab.Network.Link(Lab.Client, "eth1", kdcHost, "eth0");
            Lab.Client.AddAddress("eth1", "198.18.3.1/24");
            kdcHost.AddAddress("eth0", "198.18.3.2/24");
            Realm = await KerberosRealm.CreateAsync(Lab.Network, kdcHost, KdcAddress, "socks", "vip.l2lab.test",
                [("alice", AlicePassword), ("bob", BobPassword)], StepTimeout).WithTimeout(StepTimeout);
            AliceCache = await Realm.KinitAsync(Lab.Client, "alice", AlicePassword, StepTimeout).WithTimeout(StepTimeout);
            BobCache = await Realm.KinitAsync(Lab.Client, "bob", BobPassword, StepTimeout).WithTimeout(StepTimeout);
            Servers = await TargetServers.StartAsync(Lab.Target, TimeSpan.FromSeconds(20)).WithTimeout(StepTimeout);
            // The proxy's own krb5.conf: the realm's, with a short clock skew (never /etc/krb5.conf).
            var proxyDir = Lab.Network.CreateTempDirectory("gssapi-proxy");
            var proxyKrb5 = Path.Combine(proxyDir, "krb5.conf");
            await File.WriteAllTextAsync(proxyKrb5, (await File.ReadAllTextAsync(Realm.ConfigPath)).Replace("clockskew = 300", $"clockskew = {ClockSkewSeconds}", StringComparison.Ordinal));
            var conf = Path.Combine(proxyDir, "sockd.conf");
            await File.WriteAllTextAsync(conf, $$"""
                internal: 198.18.1.1 port = {{Port}}
                external: 198.18.2.1
                socksmethod: gssapi
                metrics: 127.0.0.1 port = {{MetricsPort}}
                timeout.negotiate: 10
                client pass {
                    from: 198.18.1.0/24 to: 0/0
                    gssapi.servicename: {{Realm.ServicePrincipal}}
                    gssapi.keytab: {{Realm.Keytab}}
                    gssapi.enctype: clear integrity confidentiality per-message
                }
                socks pass { from: 0/0 to: 0/0 user: alice@{{Realm.Realm}} }

                """);
            Proxy = Lab.Proxy.Start("/usr/bin/env", $"KRB5_CONFIG={proxyKrb5}", $"KRB5RCACHEDIR={proxyDir}", LabBinaries.L2Proxy, "--config", conf);
            await Lab.Client.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, Port, TimeSpan.FromSeconds(20), Describe, Proxy).WithTimeout(StepTimeout);
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

    public string Describe() => $"{_lab?.Network.DescribeProcesses()}";

    /// <summary>Runs the RFC 1961 test client in the client namespace with <paramref name="cache"/>'s tickets; returns its JSON.</summary>
    public async Task<JsonElement> ClientAsync(string cache, params string[] args)
    {
        var result = await Lab.Client.RunAsync("/usr/bin/env",
            [.. Realm.Environment, $"KRB5CCNAME=FILE:{cache}", "/usr/bin/python3", ClientScript, "--proxy", $"{ProxyLab.ProxyInsideV4}:{Port}", .. args],
            TimeSpan.FromSeconds(30)).WithTimeout(StepTimeout);
        Assert.True(result.Succeeded, $"client failed: {result}\n{Describe()}");
        return JsonDocument.Parse(result.StdOut).RootElement.Clone();
    }

    [GeneratedRegex(@"^(?<key>l2proxy_[a-z_]+(\{[^}]*\})?) (?<value>\S+)$", RegexOptions.Multiline)]
    private static partial Regex Sample();

    /// <summary>The proxy's metrics, scraped inside its namespace.</summary>
    public async Task<Dictionary<string, double>> ScrapeAsync()
    {
        var curl = LabBinaries.Require("curl", "curl");
        var result = await Lab.Proxy.RunAsync(curl, ["-sS", "--max-time", "5", $"http://127.0.0.1:{MetricsPort}/metrics"], TimeSpan.FromSeconds(10)).WithTimeout(StepTimeout);
        Assert.True(result.Succeeded, $"scrape failed: {result}\n{Describe()}");
        return Sample().Matches(result.StdOut).ToDictionary(m => m.Groups["key"].Value, m => double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture));
    }

    public static double Failures(Dictionary<string, double> metrics, string reason) => metrics[$"l2proxy_gssapi_failures_total{{reason=\"{reason}\"}}"];

    public static double Authenticated(Dictionary<string, double> metrics, string level) => metrics[$"l2proxy_gssapi_authenticated_total{{level=\"{level}\"}}"];
}

[CollectionDefinition(Name)]
public sealed class GssapiLabGroup : ICollectionFixture<GssapiLabFixture>
{
    public const string Name = "gssapi-lab";
}
