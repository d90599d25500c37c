using System.Globalization;
using System.Net;

namespace L2Balance.Lab.Cluster;

/// <summary>
/// A real DNS server (unbound, Debian) on a lab host: UDP and TCP on one address, answering only a
/// local zone, with its config, pid file and no control socket in the run's temp directory (never
/// /etc, never the root namespace). The zone <see cref="Zone"/> holds <see cref="WhoName"/>, a TXT
/// record naming the server (so a client knows who answered), and <see cref="ProbeName"/>, an A
/// record for l2bal's <c>dns://</c> probe.
/// </summary>
public static class DnsServers
{
    public const int Port = 53;

    public const string Zone = "lab.example.";

    /// <summary>TXT: the answering server's name (n1, n2...).</summary>
    public const string WhoName = "who." + Zone;

    /// <summary>A: what l2bal's health probe asks.</summary>
    public const string ProbeName = "probe." + Zone;

    /// <summary>
    /// Starts unbound in <paramref name="host"/>'s namespace on <paramref name="address"/>:53 and on <paramref name="moreEndPoints"/> (bound
    /// with IP_FREEBIND, so before l2bal puts the VIP on lo), answering <see cref="WhoName"/> with
    /// <paramref name="name"/>. Does not wait for readiness (<see cref="WaitReadyAsync"/>).
    /// </summary>
    public static LabProcess StartUnbound(LabHost host, IPAddress address, string name, int threads = 1, IReadOnlyList<IPEndPoint>? moreEndPoints = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(address);
        var unbound = LabBinaries.Require("/usr/sbin/unbound", "unbound");
        var dir = host.Network.CreateTempDirectory($"unbound-{host.Name}-{name}");
        var config = Path.Combine(dir, "unbound.conf");
        var interfaces = string.Concat((moreEndPoints ?? []).Select(e => $"\n  interface: {e.Address}@{e.Port}"));
        File.WriteAllText(config, string.Create(CultureInfo.InvariantCulture, $$"""
            server:
              interface: {{address}}@{{Port}}{{interfaces}}
              ip-freebind: yes
              do-ip6: no
              do-udp: yes
              do-tcp: yes
              port: {{Port}}
              num-threads: {{threads}}
              username: ""
              chroot: ""
              directory: "{{dir}}"
              pidfile: "{{Path.Combine(dir, "unbound.pid")}}"
              logfile: ""
              use-syslog: no
              verbosity: 0
              do-daemonize: no
              use-systemd: no
              module-config: "iterator"
              access-control: 0.0.0.0/0 allow
              # Refuse everything outside the lab zone: no recursion leaves the lab.
              local-zone: "." refuse
              local-zone: "{{Zone}}" static
              local-data: "{{WhoName}} 0 IN TXT {{name}}"
              local-data: "{{ProbeName}} 0 IN A {{address}}"
              ratelimit: 0
              ip-ratelimit: 0
            remote-control:
              control-enable: no

            """));
        return host.Start(unbound, "-d", "-p", "-c", config);
    }

    /// <summary>Waits until <paramref name="from"/> gets an answer to <see cref="WhoName"/> from <paramref name="server"/> over UDP and returns it.</summary>
    public static async Task<string> WaitReadyAsync(LabHost from, IPEndPoint server, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(from);
        var deadline = DateTime.UtcNow + timeout;
        var socket = from.OpenSocket(server.AddressFamily, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        using (socket)
        {
            socket.Bind(new IPEndPoint(IPAddress.Any, 0));
            var query = DnsWire.TxtQuery(1, WhoName);
            var buffer = new byte[512];
            while (true)
            {
                await socket.SendToAsync(query, server, cancellationToken).ConfigureAwait(false);
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                wait.CancelAfter(TimeSpan.FromMilliseconds(200));
                try
                {
                    var n = await socket.ReceiveAsync(buffer, wait.Token).ConfigureAwait(false);
                    if (DnsWire.ReadTxtAnswer(buffer.AsSpan(0, n)) is { Text: { } text })
                    {
                        return text;
                    }
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                }
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"no DNS answer from {server} within {timeout.TotalSeconds:0} s");
                }
            }
        }
    }
}
