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
    public const string CarolPassword = "carol-lab-pw";
    /// <summary>A second client address whose client rule carries <c>clientcompatibility: necgssapi</c> and allows integrity and confidentiality only.</summary>
    public static readonly IPAddress NecClient = IPAddress.Parse("198.18.1.3");
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
            Lab.Client.AddAddress("eth0", $"{NecClient}/24");
            kdcHost.AddAddress("eth0", "198.18.3.2/24");
            Realm = await KerberosRealm.CreateAsync(Lab.Network, kdcHost, KdcAddress, "socks", "vip.l2lab.test",
                [("alice", AlicePassword), ("bob", BobPassword), ("carol", CarolPassword)], StepTimeout).WithTimeout(StepTimeout);
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
                    from: {{NecClient}}/32 to: 0/0
                    clientcompatibility: necgssapi
                    gssapi.servicename: {{Realm.ServicePrincipal}}
                    gssapi.keytab: {{Realm.Keytab}}
                    gssapi.enctype: integrity confidentiality
                }
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
    public Task<JsonElement> ClientAsync(string cache, params string[] args) =>
        RunClientAsync(Lab.Client, Realm, cache, $"{ProxyLab.ProxyInsideV4}:{Port}", Describe, args);

    /// <summary>Runs the RFC 1961 test client in <paramref name="client"/> against <paramref name="proxy"/> (ADDR:PORT); returns its JSON.</summary>
    public static async Task<JsonElement> RunClientAsync(LabHost client, KerberosRealm realm, string cache, string proxy, Func<string> describe, params string[] args)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(realm);
        ArgumentNullException.ThrowIfNull(describe);
        var result = await client.RunAsync("/usr/bin/env",
            [.. realm.Environment, $"KRB5CCNAME=FILE:{cache}", "/usr/bin/python3", ClientScript, "--proxy", proxy, .. args],
            TimeSpan.FromSeconds(30)).WithTimeout(StepTimeout);
        Assert.True(result.Succeeded, $"client failed: {result}\n{describe()}");
        return JsonDocument.Parse(result.StdOut).RootElement.Clone();
    }

    [GeneratedRegex(@"^(?<key>l2proxy_[a-z_]+(\{[^}]*\})?) (?<value>\S+)$", RegexOptions.Multiline)]
    private static partial Regex Sample();

    /// <summary>The proxy's metrics, scraped inside its namespace.</summary>
    public Task<Dictionary<string, double>> ScrapeAsync() => ScrapeAsync(Lab.Proxy, MetricsPort, Describe);

    /// <summary>The metrics of the l2proxy serving them on 127.0.0.1:<paramref name="port"/> in <paramref name="host"/>.</summary>
    public static async Task<Dictionary<string, double>> ScrapeAsync(LabHost host, int port, Func<string> describe)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(describe);
        var curl = LabBinaries.Require("curl", "curl");
        var result = await host.RunAsync(curl, ["-sS", "--max-time", "5", $"http://127.0.0.1:{port}/metrics"], TimeSpan.FromSeconds(10)).WithTimeout(StepTimeout);
        Assert.True(result.Succeeded, $"scrape failed: {result}\n{describe()}");
        return Sample().Matches(result.StdOut).ToDictionary(m => m.Groups["key"].Value, m => double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture));
    }

    /// <summary>The proxy's event-17 lines (GssapiFailed) of <paramref name="reason"/>, the counter's label the line carries in parentheses.</summary>
    public int FailureLines(string reason) =>
        Regex.Count(Proxy.Log, $@"\[{L2Balance.Proxy.Diagnostics.EventIds.GssapiFailed}\]: [^\n]*\({reason}\)");

    /// <summary>Waits (at most 5 s: the proxy's log reaches the lab through a pipe) until there are <paramref name="count"/> lines of <paramref name="reason"/>; returns how many there are.</summary>
    public async Task<int> WaitForFailureLinesAsync(string reason, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (FailureLines(reason) < count && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        return FailureLines(reason);
    }

    public static double UdpDrops(Dictionary<string, double> metrics, string reason) => metrics[$"l2proxy_udp_datagrams_dropped_total{{reason=\"{reason}\"}}"];

    public static double Failures(Dictionary<string, double> metrics, string reason) => metrics[$"l2proxy_gssapi_failures_total{{reason=\"{reason}\"}}"];

    public static double Authenticated(Dictionary<string, double> metrics, string level) => metrics[$"l2proxy_gssapi_authenticated_total{{level=\"{level}\"}}"];

    /// <summary>A number of the client's JSON, or -100 when absent.</summary>
    public static int NumberOf(JsonElement e, string name) => e.TryGetProperty(name, out var p) && p.ValueKind == JsonValueKind.Number ? p.GetInt32() : -100;

    /// <summary>A string of the client's JSON, or null when absent.</summary>
    public static string? TextOf(JsonElement e, string name) => e.TryGetProperty(name, out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
}

[CollectionDefinition(Name)]
public sealed class GssapiLabGroup : ICollectionFixture<GssapiLabFixture>
{
    public const string Name = "gssapi-lab";
}
