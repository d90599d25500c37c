using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using L2Balance.Lab;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// The GSS-API lines of <c>l2lab bench-proxy</c> (issue 20, part "gssapi"): l2proxy with method none and with
/// GSS-API at levels clear, integrity and confidentiality, each driven by the RFC 1961 test client on
/// python3-gssapi (tests/L2Balance.Lab.Tests/Proxy/Gssapi/rfc1961_client.py) against a lab KDC. The client is slow,
/// so the rates are the client's; the figures that matter are the proxy's CPU per CONNECT and per GB
/// (/proc/PID/stat of the proxy namespace), with the client's own CPU beside them.
/// </summary>
internal static partial class ProxyBench
{
    private static readonly string[] GssapiLevels = ["none", "clear", "integrity", "confidentiality"];

    /// <summary>Client processes running CONNECTs at once (python: one process per core's worth of load, and some waiting on the network).</summary>
    private const int GssapiClients = 4;

    private static readonly TimeSpan GssapiConnectDuration = TimeSpan.FromSeconds(5);

    /// <summary>Bytes one client uploads through the proxy to the sink (16 KiB messages, client to target): 1 GiB where the proxy splices, 256 MiB where it unwraps (slow).</summary>
    private static long GssapiUploadBytes(string level) => level is "none" or "clear" ? 1L << 30 : 256L << 20;

    private static readonly IPAddress GssapiKdc = IPAddress.Parse("198.18.3.2");

    /// <summary>One level's figures: CONNECT (32-byte exchange, the target closes) and upload to the sink.</summary>
    private sealed record GssapiRow(
        string level, long connects, long connect_failures, double connects_per_s, double proxy_cpu_us_per_connect, double client_cpu_us_per_connect,
        long upload_bytes, double upload_mbyte_s, double proxy_cpu_ms_per_gbyte, double client_cpu_ms_per_gbyte, double splice_calls_per_mbyte, string load_average);

    private static async Task<List<GssapiRow>> GssapiAsync(ProxyLab lab, string dir, BenchTargets targets)
    {
        LabBinaries.Require("python3", "python3-gssapi");
        var kdcHost = lab.Network.AddHost("kdc");
        lab.Network.Link(lab.Client, "eth1", kdcHost, "eth0");
        lab.Client.AddAddress("eth1", "198.18.3.1/24");
        kdcHost.AddAddress("eth0", "198.18.3.2/24");
        var step = TimeSpan.FromSeconds(30);
        const string password = "bench-pw";
        var realm = await KerberosRealm.CreateAsync(lab.Network, kdcHost, GssapiKdc, "socks", "vip.l2lab.test", [("alice", password)], step).ConfigureAwait(false);
        var cache = await realm.KinitAsync(lab.Client, "alice", password, step).ConfigureAwait(false);
        var rows = new List<GssapiRow>();
        foreach (var level in GssapiLevels)
        {
            Console.WriteLine($"== gssapi {level}");
            using var proxy = StartGssapiProxy(lab, dir, realm, level);
            await lab.Client.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, 1080, TimeSpan.FromSeconds(15), proxy.Describe, proxy).ConfigureAwait(false);
            string[] session = level == "none" ? ["--method", "none"] : ["--level", level];
            var exchange = new IPEndPoint(ProxyLab.TargetV4, BenchTargets.TargetClosesPort);

            // A discarded warm-up: the service ticket into the cache, the proxy's pools and the replay cache file.
            _ = await GssapiClientAsync(lab, realm, cache, [.. session, "--connect", exchange.ToString(), "--payload", "32", "--repeat", "20", "--seconds", "5"]).ConfigureAwait(false);
            var load = LoadAverage();
            var cpu = Cpu(lab);
            var clients = await Task.WhenAll(Enumerable.Range(0, GssapiClients).Select(_ => GssapiClientAsync(lab, realm, cache,
                [.. session, "--connect", exchange.ToString(), "--payload", "32", "--repeat", "1000000", "--seconds", GssapiConnectDuration.TotalSeconds.ToString(CultureInfo.InvariantCulture)]))).ConfigureAwait(false);
            var connectCpu = Cpu(lab) - cpu;
            long connects = clients.Sum(c => c.GetProperty("sessions").GetInt64());
            long failures = clients.Sum(c => c.GetProperty("failures").GetInt64());
            double seconds = clients.Max(c => c.GetProperty("seconds").GetDouble());
            double clientCpu = clients.Sum(c => c.GetProperty("cpu_seconds").GetDouble());
            if (failures > 0)
            {
                Console.WriteLine($"   first failure: {clients.Select(c => c.GetProperty("first_failure")).First(f => f.ValueKind != JsonValueKind.Null)}");
            }

            // The proxy's splice(2) calls during the upload (perf's tracepoint count): the splice relay shows as many per MB, the user-space relay as none.
            var perf = lab.Proxy.Start(LabBinaries.Require("perf", "linux-perf"), "stat", "-x,", "-e", "syscalls:sys_enter_splice", "-p", proxy.Id.ToString(CultureInfo.InvariantCulture));
            await Task.Delay(300).ConfigureAwait(false);
            cpu = Cpu(lab);
            var sunk = targets.SinkBytes;
            var upload = await GssapiClientAsync(lab, realm, cache,
                [.. session, "--connect", new IPEndPoint(ProxyLab.TargetV4, BenchTargets.SinkPort).ToString(), "--upload", GssapiUploadBytes(level).ToString(CultureInfo.InvariantCulture), "--repeat", "1", "--seconds", "60"]).ConfigureAwait(false);
            var uploadCpu = Cpu(lab) - cpu;
            perf.Kill(2);
            await perf.WaitForExitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            // perf -x, prints "COUNT,,EVENT,..." (the lab prefixes each logged line with its time and stream).
            var splices = Regex.Match(perf.Log, @"\] (\d+),,syscalls:sys_enter_splice,") is { Success: true } m ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
            if (splices < 0)
            {
                Console.WriteLine($"   no splice count from perf:\n{perf.Describe()}");
            }

            perf.Dispose();
            // The sink's count: what reached the target, after the proxy's unwrap.
            long bytes = targets.SinkBytes - sunk;
            var uploadSeconds = upload.GetProperty("seconds").GetDouble();
            var row = new GssapiRow(level, connects, failures, connects / seconds,
                connects == 0 ? double.NaN : connectCpu.ProxySeconds / connects * 1e6, connects == 0 ? double.NaN : clientCpu / connects * 1e6,
                bytes, bytes / uploadSeconds / 1e6, PerGigabyteMs(uploadCpu.ProxySeconds, bytes), PerGigabyteMs(upload.GetProperty("cpu_seconds").GetDouble(), bytes),
                splices < 0 || bytes == 0 ? double.NaN : splices / (bytes / 1e6),
                $"{load} .. {LoadAverage()}");
            rows.Add(row);
            Console.WriteLine($"   {row}");
            if (proxy.HasExited)
            {
                Console.WriteLine($"   l2proxy exited during the run:\n{proxy.Describe()}");
            }
        }

        return rows;
    }

    private static LabProcess StartGssapiProxy(ProxyLab lab, string dir, KerberosRealm realm, string level)
    {
        var path = Path.Combine(dir, $"l2proxy-gssapi-{level}.conf");
        var method = level == "none" ? "none" : "gssapi";
        // One level per run: the rule offers only it, so the client's request is the level in force.
        var gss = level == "none" ? string.Empty : $"""

                gssapi.servicename: {realm.ServicePrincipal}
                gssapi.keytab: {realm.Keytab}
                gssapi.enctype: {level}
            """;
        File.WriteAllText(path, $$"""
            internal: 198.18.1.1 port = 1080
            external: 198.18.2.1
            socksmethod: {{method}}
            client pass {
                from: 198.18.1.0/24 to: 0/0{{gss}}
            }
            socks pass { from: 0/0 to: 0/0 }

            """);
        return lab.Proxy.Start("/usr/bin/env", $"KRB5_CONFIG={realm.ConfigPath}", $"KRB5RCACHEDIR={dir}", LabBinaries.L2Proxy, "--config", path);
    }

    /// <summary>Runs the test client in the client namespace (bounded: its own --seconds and this timeout); returns its JSON.</summary>
    private static async Task<JsonElement> GssapiClientAsync(ProxyLab lab, KerberosRealm realm, string cache, string[] args)
    {
        var script = Path.Combine(LabBinaries.RepoRoot, "tests", "L2Balance.Lab.Tests", "Proxy", "Gssapi", "rfc1961_client.py");
        var result = await lab.Client.RunAsync("/usr/bin/env",
            [.. realm.Environment, $"KRB5CCNAME=FILE:{cache}", "/usr/bin/python3", script, "--proxy", $"{ProxyLab.ProxyInsideV4}:1080", "--service", "socks@vip.l2lab.test", .. args],
            TimeSpan.FromSeconds(90)).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new IOException($"the GSS-API client failed: {result}");
        }

        return JsonDocument.Parse(result.StdOut).RootElement.Clone();
    }

    /// <summary>The 1-minute load average (/proc/loadavg): the machine is shared, so the table says how busy it was.</summary>
    private static string LoadAverage() => File.ReadAllText("/proc/loadavg").Split(' ')[0];

    private static string GssapiTable(List<GssapiRow> rows)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"gssapi (RFC 1961 client on python3-gssapi, {GssapiClients} processes; upload 1 GiB at none and clear, 256 MiB at the wrapping levels, one stream, client to target)\n");
        text.Append($"{"level",-16}{"CONNECT/s",11}{"proxy us/CONN",15}{"client us/CONN",16}{"failed",8}{"upload MB/s",13}{"proxy ms/GB",13}{"client ms/GB",14}{"splice/MB",11}  load\n");
        foreach (var r in rows)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"{r.level,-16}{r.connects_per_s,11:0}{r.proxy_cpu_us_per_connect,15:0}{r.client_cpu_us_per_connect,16:0}{r.connect_failures,8}{r.upload_mbyte_s,13:0}{r.proxy_cpu_ms_per_gbyte,13:0}{r.client_cpu_ms_per_gbyte,14:0}{r.splice_calls_per_mbyte,11:0.0}  {r.load_average}\n");
        }

        return text.ToString();
    }
}
