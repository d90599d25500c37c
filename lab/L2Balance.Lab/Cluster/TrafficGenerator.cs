using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace L2Balance.Lab.Cluster;

/// <summary>What a short CONNECT does once the proxy has connected it.</summary>
public enum ConnectPayload
{
    /// <summary>Send 16 bytes to a TCP echo server and check them.</summary>
    Echo,

    /// <summary>GET /known.txt from the HTTP server and check the status line.</summary>
    Http,
}

/// <summary>
/// What a <see cref="TrafficGenerator"/> run does. Bounded in count (<see cref="MaxConnects"/>) and
/// time (<see cref="Duration"/>, and every step by <see cref="StepTimeout"/>).
/// </summary>
public sealed record TrafficOptions
{
    /// <summary>The SOCKS5 endpoint (the VIP's 1080).</summary>
    public required IPEndPoint Proxy { get; init; }

    /// <summary>Client source addresses for the CONNECT stream, used in turn.</summary>
    public required IReadOnlyList<IPAddress> Sources { get; init; }

    /// <summary>Where the short CONNECTs go (the target's echo or HTTP server); null: no CONNECT stream.</summary>
    public IPEndPoint? ConnectTarget { get; init; }

    /// <summary>What the short CONNECTs do once connected.</summary>
    public ConnectPayload ConnectPayload { get; init; } = ConnectPayload.Echo;

    /// <summary>Upper bound on CONNECTs issued in the run.</summary>
    public int MaxConnects { get; init; } = 5000;

    /// <summary>CONNECTs in flight at once, the sources taken in turn (ignored with <see cref="ConnectStreamPerSource"/>).</summary>
    public int ConnectConcurrency { get; init; } = 4;

    /// <summary>
    /// One sequential CONNECT stream per source address instead of <see cref="ConnectConcurrency"/>
    /// shared slots: a client that waits (a SYN retransmission while its bucket moves) holds up only
    /// itself, as separate real clients do, so each node's rate shows that node's service.
    /// </summary>
    public bool ConnectStreamPerSource { get; init; }

    /// <summary>How long new work is started; the run ends at most one step timeout later.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Bound on one CONNECT (connect, handshake, exchange), one session echo, one session setup.</summary>
    public TimeSpan StepTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>One long-lived echo session per address.</summary>
    public IReadOnlyList<IPAddress> SessionSources { get; init; } = [];

    /// <summary>The TCP echo server the long sessions use.</summary>
    public IPEndPoint? EchoTarget { get; init; }

    /// <summary>One UDP ASSOCIATE session per address.</summary>
    public IReadOnlyList<IPAddress> UdpSources { get; init; } = [];

    /// <summary>The UDP echo server the UDP sessions use.</summary>
    public IPEndPoint? UdpEchoTarget { get; init; }

    /// <summary>Sessions send every MinInterval..MaxInterval (random, per message).</summary>
    public TimeSpan MinInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>See <see cref="MinInterval"/>.</summary>
    public TimeSpan MaxInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// After the run, how long UDP sessions wait for echoes still in flight (the wait ends once all came): an echo goes
    /// through the router, the proxy and the echo server, each of which may wait for a core on a loaded lab machine.
    /// </summary>
    public TimeSpan UdpDrain { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Maps a SOCKS reply's BND (address and port) to the node that served it.</summary>
    public Func<IPEndPoint, int?> NodeOf { get; init; } = _ => null;

    /// <summary>Clock for timestamps and send intervals.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// Ends the run early exactly as <see cref="Duration"/> does: no new work, sessions end unbroken.
    /// Unlike cancelling <c>RunAsync</c>'s token (an abort, recorded as failures), for callers that
    /// run traffic "until done" (the demo), with <see cref="Duration"/> as the upper bound.
    /// </summary>
    public CancellationToken Stop { get; init; }
}

/// <summary>
/// SOCKS5 traffic from a client namespace through the cluster: a stream of short CONNECTs from
/// each source address in turn, long-lived echo sessions and UDP ASSOCIATE sessions. Sockets are
/// created inside the namespace with setns(2) (<see cref="LabHost.OpenSocket"/>), so this is pure
/// C#. Create one per run; <see cref="Live"/> counters can be read while it runs.
/// </summary>
public sealed class TrafficGenerator
{
    private readonly LabHost _client;
    private readonly TrafficOptions _options;
    private readonly ConcurrentQueue<ConnectRecord> _connects = new();
    private readonly ConcurrentQueue<SessionRecord> _sessions = new();
    private readonly ConcurrentQueue<UdpRecord> _udp = new();
    private long _start;
    private int _issued;

    public TrafficGenerator(LabHost client, TrafficOptions options)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Sources.Count == 0 && options.ConnectTarget is not null)
        {
            throw new ArgumentException("the CONNECT stream needs at least one source address", nameof(options));
        }

        if ((options.SessionSources.Count > 0 && options.EchoTarget is null) || (options.UdpSources.Count > 0 && options.UdpEchoTarget is null))
        {
            throw new ArgumentException("sessions need EchoTarget, UDP sessions need UdpEchoTarget", nameof(options));
        }

        _client = client;
        _options = options;
    }

    /// <summary>Counters updated while the run goes on (for progress output and for tests that act mid-run).</summary>
    public TrafficLive Live { get; } = new();

    /// <summary>Milliseconds since the run started (the time base of every record).</summary>
    public double ElapsedMs => _options.TimeProvider.GetElapsedTime(_start).TotalMilliseconds;

    /// <summary>The CONNECT records so far, in completion order (a snapshot, for progress output mid-run).</summary>
    public IReadOnlyList<ConnectRecord> ConnectsSoFar => [.. _connects];

    /// <summary>Runs until <see cref="TrafficOptions.Duration"/> or <see cref="TrafficOptions.MaxConnects"/>, then returns every record.</summary>
    public async Task<TrafficResults> RunAsync(CancellationToken cancellationToken = default)
    {
        var startedUtc = _options.TimeProvider.GetUtcNow();
        _start = _options.TimeProvider.GetTimestamp();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _options.Stop);
        stop.CancelAfter(_options.Duration);

        var tasks = new List<Task>();
        if (_options.ConnectTarget is not null)
        {
            IReadOnlyList<IPAddress?> streams = _options.ConnectStreamPerSource
                ? [.. _options.Sources]
                : [.. Enumerable.Repeat<IPAddress?>(null, Math.Max(1, _options.ConnectConcurrency))];
            tasks.AddRange(streams.Select(own => Task.Run(() => ConnectWorkerAsync(own, stop.Token, cancellationToken), CancellationToken.None)));
        }

        tasks.AddRange(_options.SessionSources.Select((source, i) => Task.Run(() => SessionAsync(source, i, stop.Token, cancellationToken), CancellationToken.None)));
        tasks.AddRange(_options.UdpSources.Select((source, i) => Task.Run(() => UdpSessionAsync(source, i, stop.Token, cancellationToken), CancellationToken.None)));
        await Task.WhenAll(tasks).ConfigureAwait(false);
        return new TrafficResults(startedUtc, ElapsedMs, [.. _connects], [.. _sessions], [.. _udp]);
    }

    /// <param name="own">The source of a per-source stream; null: the sources in turn.</param>
    /// <param name="stop">Ends the stream: no new CONNECT after it.</param>
    /// <param name="abort">Abandons a CONNECT in flight.</param>
    private async Task ConnectWorkerAsync(IPAddress? own, CancellationToken stop, CancellationToken abort)
    {
        while (!stop.IsCancellationRequested)
        {
            var n = Interlocked.Increment(ref _issued);
            if (n > _options.MaxConnects)
            {
                return;
            }

            var source = own ?? _options.Sources[(n - 1) % _options.Sources.Count];
            var record = await ConnectOnceAsync(source, n, abort).ConfigureAwait(false);
            _connects.Enqueue(record);
            if (record.Outcome == TrafficOutcome.Ok)
            {
                Live.AddConnectOk();
            }
            else
            {
                Live.AddConnectFailed();
            }
        }
    }

    private async Task<ConnectRecord> ConnectOnceAsync(IPAddress source, int sequence, CancellationToken abort)
    {
        var start = ElapsedMs;
        int? node = null;
        using var step = CancellationTokenSource.CreateLinkedTokenSource(abort);
        step.CancelAfter(_options.StepTimeout);
        try
        {
            using var socket = await OpenThroughProxyAsync(source, Socks5Client.Connect, _options.ConnectTarget!, step.Token).ConfigureAwait(false);
            var (code, bound) = await Socks5Client.ReadReplyAsync(socket, step.Token).ConfigureAwait(false);
            node = _options.NodeOf(bound);
            if (code != 0)
            {
                return new ConnectRecord(source.ToString(), start, ElapsedMs, TrafficOutcome.ProxyRefused, node, $"SOCKS reply {code}");
            }

            var ok = _options.ConnectPayload == ConnectPayload.Http
                ? await HttpGetAsync(socket, step.Token).ConfigureAwait(false)
                : await EchoOnceAsync(socket, Encoding.ASCII.GetBytes($"c{sequence:x8} l2lab!\n"), step.Token).ConfigureAwait(false);
            return new ConnectRecord(source.ToString(), start, ElapsedMs, ok ? TrafficOutcome.Ok : TrafficOutcome.Corrupt, node, ok ? null : "unexpected data");
        }
        catch (Exception ex) when (Classify(ex, step, abort) is { } outcome)
        {
            return new ConnectRecord(source.ToString(), start, ElapsedMs, outcome, node, ex.Message);
        }
    }

    private async Task SessionAsync(IPAddress source, int index, CancellationToken stop, CancellationToken abort)
    {
        int? node = null;
        double? established = null, lastOk = null;
        var exchanges = 0;
        Socket? socket = null;
        using var setup = CancellationTokenSource.CreateLinkedTokenSource(abort);
        setup.CancelAfter(_options.StepTimeout);
        var current = setup;
        try
        {
            socket = await OpenThroughProxyAsync(source, Socks5Client.Connect, _options.EchoTarget!, setup.Token).ConfigureAwait(false);
            var (code, bound) = await Socks5Client.ReadReplyAsync(socket, setup.Token).ConfigureAwait(false);
            node = _options.NodeOf(bound);
            if (code != 0)
            {
                Record(TrafficOutcome.ProxyRefused, $"SOCKS reply {code}");
                return;
            }

            established = ElapsedMs;
            Live.AddSessionUp();
            while (true)
            {
                try
                {
                    await Task.Delay(NextInterval(), _options.TimeProvider, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    Record(null, null);
                    return;
                }

                using var step = CancellationTokenSource.CreateLinkedTokenSource(abort);
                step.CancelAfter(_options.StepTimeout);
                current = step;
                if (!await EchoOnceAsync(socket, Encoding.ASCII.GetBytes($"s{index:x4} {exchanges:x8}\n"), step.Token).ConfigureAwait(false))
                {
                    Record(TrafficOutcome.Corrupt, "echo differs");
                    return;
                }

                exchanges++;
                lastOk = ElapsedMs;
                Live.AddSessionExchange();
            }
        }
        catch (Exception ex) when (Classify(ex, current, abort) is { } outcome)
        {
            Record(outcome, ex.Message);
        }
        finally
        {
            socket?.Dispose();
        }

        void Record(TrafficOutcome? broke, string? detail)
        {
            if (broke is not null)
            {
                Live.AddSessionBreak();
            }

            _sessions.Enqueue(new SessionRecord(source.ToString(), node, established, exchanges, lastOk, broke, broke is null ? null : ElapsedMs, detail));
        }
    }

    private async Task UdpSessionAsync(IPAddress source, int index, CancellationToken stop, CancellationToken abort)
    {
        Socket? control = null;
        using var udp = _client.OpenSocket(source.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(source, 0));
        IPEndPoint relay;
        int? node;
        using (var setup = CancellationTokenSource.CreateLinkedTokenSource(abort))
        {
            setup.CancelAfter(_options.StepTimeout);
            try
            {
                control = await OpenThroughProxyAsync(source, Socks5Client.UdpAssociate, (IPEndPoint)udp.LocalEndPoint!, setup.Token).ConfigureAwait(false);
                var (code, bound) = await Socks5Client.ReadReplyAsync(control, setup.Token).ConfigureAwait(false);
                if (code != 0)
                {
                    control.Dispose();
                    _udp.Enqueue(new UdpRecord(source.ToString(), null, null, 0, 0, 0, TrafficOutcome.ProxyRefused, null, null, $"SOCKS reply {code}"));
                    return;
                }

                relay = bound.Address.Equals(IPAddress.Any) || bound.Address.Equals(IPAddress.IPv6Any) ? new IPEndPoint(_options.Proxy.Address, bound.Port) : bound;
                node = _options.NodeOf(relay);
            }
            catch (Exception ex) when (Classify(ex, setup, abort) is { } outcome)
            {
                control?.Dispose();
                _udp.Enqueue(new UdpRecord(source.ToString(), null, null, 0, 0, 0, outcome, null, null, ex.Message));
                return;
            }
        }

        using var controlSocket = control;
        udp.Connect(relay);
        var established = ElapsedMs;
        var received = new ConcurrentDictionary<int, double>();
        var sent = 0;
        TrafficOutcome? controlBreak = null;
        double? controlBreakMs = null;
        string? detail = null;
        using var done = CancellationTokenSource.CreateLinkedTokenSource(abort);

        // The association lives as long as its control connection (RFC 1928 §7): watch it.
        var watch = Task.Run(async () =>
        {
            try
            {
                var n = await controlSocket.ReceiveAsync(new byte[1], done.Token).ConfigureAwait(false);
                controlBreak = n == 0 ? TrafficOutcome.Eof : TrafficOutcome.Corrupt;
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException ex)
            {
                controlBreak = MapSocketError(ex.SocketErrorCode);
                detail = ex.Message;
            }

            controlBreakMs = ElapsedMs;
        }, CancellationToken.None);

        var receive = Task.Run(async () =>
        {
            var buffer = new byte[2048];
            while (!done.IsCancellationRequested)
            {
                try
                {
                    var n = await udp.ReceiveAsync(buffer, done.Token).ConfigureAwait(false);
                    var payload = Socks5Client.UnwrapUdp(buffer.AsSpan(0, n));
                    if (payload.Length >= 4 && received.TryAdd(BitConverter.ToInt32(payload[..4]), ElapsedMs))
                    {
                        Live.AddUdpReceived();
                    }
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (SocketException)
                {
                    // ICMP port unreachable from a relay that is gone: counted as loss, keep listening.
                }
            }
        }, CancellationToken.None);

        var target = _options.UdpEchoTarget!;
        var pad = Encoding.ASCII.GetBytes($" u{index:x4} l2lab");
        while (!stop.IsCancellationRequested)
        {
            var payload = BitConverter.GetBytes(sent).Concat(pad).ToArray();
            try
            {
                await udp.SendAsync(Socks5Client.WrapUdp(target, payload), stop).ConfigureAwait(false);
                sent++;
                Live.AddUdpSent();
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (SocketException)
            {
                // A pending ICMP error surfaces on send; the datagram was not sent.
            }

            try
            {
                await Task.Delay(NextInterval(), _options.TimeProvider, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        // Let echoes still in flight arrive, then stop the receiver and the watcher.
        var drainUntil = ElapsedMs + _options.UdpDrain.TotalMilliseconds;
        while (received.Count < sent && ElapsedMs < drainUntil && !abort.IsCancellationRequested)
        {
            await Task.Delay(10, CancellationToken.None).ConfigureAwait(false);
        }

        var end = ElapsedMs;
        await done.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(watch, receive).ConfigureAwait(false);
        var times = received.Values.Where(t => t <= end).Order().Prepend(established).Append(end).ToArray();
        var gap = times.Zip(times.Skip(1), (a, b) => b - a).DefaultIfEmpty(0).Max();
        _udp.Enqueue(new UdpRecord(source.ToString(), node, relay.ToString(), sent, received.Count, gap, null, controlBreak, controlBreakMs, detail));
    }

    /// <summary>Opens a socket bound to <paramref name="source"/> in the client namespace, connects to the proxy, negotiates and sends one request.</summary>
    private async Task<Socket> OpenThroughProxyAsync(IPAddress source, byte command, IPEndPoint destination, CancellationToken cancellationToken)
    {
        var socket = _client.OpenSocket(source.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(source, 0));
            await socket.ConnectAsync(_options.Proxy, cancellationToken).ConfigureAwait(false);
            await Socks5Client.NegotiateNoAuthAsync(socket, cancellationToken).ConfigureAwait(false);
            await Socks5Client.SendRequestAsync(socket, command, destination, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<bool> EchoOnceAsync(Socket socket, byte[] message, CancellationToken cancellationToken)
    {
        await socket.SendAsync(message, cancellationToken).ConfigureAwait(false);
        var echo = await Socks5Client.ReadExactlyAsync(socket, message.Length, cancellationToken).ConfigureAwait(false);
        return echo.AsSpan().SequenceEqual(message);
    }

    private static async Task<bool> HttpGetAsync(Socket socket, CancellationToken cancellationToken)
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET /{TargetServers.KnownFileName} HTTP/1.0\r\nHost: target\r\n\r\n"), cancellationToken).ConfigureAwait(false);
        var head = new byte[12];
        var status = await Socks5Client.ReadExactlyAsync(socket, head.Length, cancellationToken).ConfigureAwait(false);
        var ok = Encoding.ASCII.GetString(status) is "HTTP/1.0 200" or "HTTP/1.1 200";
        var buffer = new byte[65536];
        while (await socket.ReceiveAsync(buffer, cancellationToken).ConfigureAwait(false) > 0)
        {
            // Read to the server's FIN so the connection closes cleanly.
        }

        return ok;
    }

    private TimeSpan NextInterval()
    {
        var min = (int)_options.MinInterval.TotalMilliseconds;
        var max = Math.Max(min, (int)_options.MaxInterval.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(RandomNumberGenerator.GetInt32(min, max + 1));
    }

    /// <summary>
    /// The outcome of a failed step. Anything unexpected is recorded as <see cref="TrafficOutcome.Other"/>
    /// with its message rather than thrown: one odd failure must not lose a whole run's records.
    /// </summary>
    private static TrafficOutcome? Classify(Exception ex, CancellationTokenSource step, CancellationToken abort) => ex switch
    {
        OperationCanceledException when abort.IsCancellationRequested => TrafficOutcome.Other,
        OperationCanceledException when step.IsCancellationRequested => TrafficOutcome.Timeout,
        SocketException se => MapSocketError(se.SocketErrorCode),
        EndOfStreamException => TrafficOutcome.Eof,
        InvalidDataException => TrafficOutcome.Corrupt,
        _ => TrafficOutcome.Other,
    };

    private static TrafficOutcome MapSocketError(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => TrafficOutcome.Refused,
        SocketError.ConnectionReset or SocketError.ConnectionAborted => TrafficOutcome.Reset,
        SocketError.TimedOut => TrafficOutcome.Timeout,
        SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostDown => TrafficOutcome.Unreachable,
        _ => TrafficOutcome.Other,
    };
}

/// <summary>Counters a running <see cref="TrafficGenerator"/> updates; safe to read from any thread.</summary>
public sealed class TrafficLive
{
    private long _connectsOk;
    private long _connectsFailed;
    private long _sessionsUp;
    private long _sessionExchanges;
    private long _sessionBreaks;
    private long _udpSent;
    private long _udpReceived;

    public long ConnectsOk => Interlocked.Read(ref _connectsOk);

    public long ConnectsFailed => Interlocked.Read(ref _connectsFailed);

    public long SessionsUp => Interlocked.Read(ref _sessionsUp);

    public long SessionExchanges => Interlocked.Read(ref _sessionExchanges);

    public long SessionBreaks => Interlocked.Read(ref _sessionBreaks);

    public long UdpSent => Interlocked.Read(ref _udpSent);

    public long UdpReceived => Interlocked.Read(ref _udpReceived);

    public override string ToString() =>
        $"connects ok {ConnectsOk} failed {ConnectsFailed}; sessions up {SessionsUp} exchanges {SessionExchanges} breaks {SessionBreaks}; udp {UdpReceived}/{UdpSent}";

    internal void AddConnectOk() => Interlocked.Increment(ref _connectsOk);

    internal void AddConnectFailed() => Interlocked.Increment(ref _connectsFailed);

    internal void AddSessionUp() => Interlocked.Increment(ref _sessionsUp);

    internal void AddSessionExchange() => Interlocked.Increment(ref _sessionExchanges);

    internal void AddSessionBreak() => Interlocked.Increment(ref _sessionBreaks);

    internal void AddUdpSent() => Interlocked.Increment(ref _udpSent);

    internal void AddUdpReceived() => Interlocked.Increment(ref _udpReceived);
}
