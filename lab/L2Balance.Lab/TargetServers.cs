using System.Net;

namespace L2Balance.Lab;

/// <summary>
/// Small servers on a target host, all dual-stack on [::] (IPv4 and IPv6): HTTP on
/// <see cref="HttpPort"/> and <see cref="HttpPort2"/> serving one known file, a TCP echo on
/// <see cref="TcpEchoPort"/> that echoes until EOF and then half-closes, and a UDP echo on
/// <see cref="UdpEchoPort"/>. Each exits by itself after <see cref="Lifetime"/> and is stopped
/// with the lab.
/// </summary>
public sealed class TargetServers
{
    public const int HttpPort = 8080;
    public const int HttpPort2 = 8081;
    public const int TcpEchoPort = 7000;
    public const int UdpEchoPort = 7001;

    /// <summary>Upper bound on a server's life, whatever happens to the test run.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(15);

    /// <summary>The file served over HTTP (path /<see cref="KnownFileName"/>).</summary>
    public const string KnownFileName = "known.txt";

    private const string Script = """
        import functools, http.server, os, socket, socketserver, sys, threading
        mode, port, lifetime = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
        # Bounded: the server exits by itself after its lifetime.
        threading.Timer(lifetime, lambda: os._exit(0)).start()

        def dual_stack(kind):
            s = socket.socket(socket.AF_INET6, kind)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", port))
            return s

        if mode == "http":
            class Server(http.server.ThreadingHTTPServer):
                address_family = socket.AF_INET6
                def server_bind(self):
                    self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                    socketserver.TCPServer.server_bind(self)   # no getfqdn(): no name lookups
                    self.server_name, self.server_port = "target", port
            handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[4])
            srv = Server(("::", port), handler)
            print(f"http listening on [::]:{port}", flush=True)
            srv.serve_forever()
        elif mode == "tcp-echo":
            def serve(c, peer):
                with c:
                    total = 0
                    while True:
                        data = c.recv(65536)
                        if not data:
                            break
                        c.sendall(data)
                        total += len(data)
                    c.shutdown(socket.SHUT_WR)   # half-close after the client's FIN
                    print(f"tcp-echo {peer[0]}:{peer[1]} echoed {total} bytes", flush=True)
            s = dual_stack(socket.SOCK_STREAM)
            s.listen(64)
            print(f"tcp-echo listening on [::]:{port}", flush=True)
            while True:
                c, peer = s.accept()
                threading.Thread(target=serve, args=(c, peer), daemon=True).start()
        elif mode == "udp-echo":
            s = dual_stack(socket.SOCK_DGRAM)
            print(f"udp-echo listening on [::]:{port}", flush=True)
            while True:
                data, peer = s.recvfrom(65535)
                s.sendto(data, peer)
        """;

    private readonly LabHost _host;
    private readonly List<LabProcess> _processes = [];

    private TargetServers(LabHost host, string knownFileContent)
    {
        _host = host;
        KnownFileContent = knownFileContent;
    }

    /// <summary>The content of the known file.</summary>
    public string KnownFileContent { get; }

    /// <summary>The servers' processes.</summary>
    public IReadOnlyList<LabProcess> Processes => _processes;

    /// <summary>Logs of all servers, for failure messages.</summary>
    public string Describe() => string.Join('\n', _processes.Select(p => p.Describe()));

    /// <summary>Starts all servers on <paramref name="host"/> and waits until each TCP port accepts (from the host itself).</summary>
    public static async Task<TargetServers> StartAsync(LabHost host, TimeSpan readyTimeout)
    {
        var python = LabBinaries.Require("/usr/bin/python3", "python3");
        var dir = host.Network.CreateTempDirectory("target");
        var script = Path.Combine(dir, "labservers.py");
        await File.WriteAllTextAsync(script, Script).ConfigureAwait(false);
        var www = Path.Combine(dir, "www");
        Directory.CreateDirectory(www);
        var content = $"L2Balance lab known file {Guid.NewGuid():N}\n" + string.Concat(Enumerable.Repeat("0123456789abcdef", 4096));
        await File.WriteAllTextAsync(Path.Combine(www, KnownFileName), content).ConfigureAwait(false);

        var servers = new TargetServers(host, content);
        var lifetime = ((int)Lifetime.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        servers._processes.Add(host.Start(python, script, "http", $"{HttpPort}", lifetime, www));
        servers._processes.Add(host.Start(python, script, "http", $"{HttpPort2}", lifetime, www));
        servers._processes.Add(host.Start(python, script, "tcp-echo", $"{TcpEchoPort}", lifetime));
        servers._processes.Add(host.Start(python, script, "udp-echo", $"{UdpEchoPort}", lifetime));
        foreach (var port in new[] { HttpPort, HttpPort2, TcpEchoPort })
        {
            await host.WaitForTcpPortAsync(IPAddress.Loopback, port, readyTimeout, servers.Describe).ConfigureAwait(false);
        }

        return servers;
    }
}
