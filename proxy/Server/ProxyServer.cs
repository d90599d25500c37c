using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Auth;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Relay;
using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Server;

/// <summary>
/// Accepts clients on every <c>internal</c> address, applies the client rules and limits, and
/// runs one <see cref="SocksSession"/> per connection. One sweep timer enforces the negotiate,
/// connect and io timeouts of all sessions, so no session needs a timer of its own.
/// </summary>
public sealed class ProxyServer : IAsyncDisposable
{
    private const int ListenBacklog = 4096;

    /// <summary>asm-generic/socket.h SOL_SOCKET and SO_REUSEPORT (.NET's SocketOptionName has no ReusePort on Linux).</summary>
    private const int SolSocket = 1;
    private const int SoReusePort = 15;

    /// <summary>linux/in.h IP_FREEBIND (SOL_IP) and linux/in6.h IPV6_FREEBIND (SOL_IPV6): bind an address not (yet) on the node.</summary>
    private const int IpFreeBind = 15;
    private const int Ipv6FreeBind = 78;
    private readonly List<Socket> _listeners = [];
    private readonly List<Task> _acceptLoops = [];
    private readonly ConcurrentDictionary<SocksSession, byte> _sessions = new();
    private long _nextSessionId;
    private readonly ConcurrentDictionary<IPAddress, int> _perAddress = new();
    private readonly CancellationTokenSource _stopping = new();
    private ITimer? _sweep;
    private int _udpAssociations;
    private ServingConfig _config;

    public ProxyServer(ProxyOptions options, ProxyLog log, UserStore? users, INameResolver? resolver = null, TimeProvider? time = null)
    {
        _config = new ServingConfig(options ?? throw new ArgumentNullException(nameof(options)), users);
        Log = log ?? throw new ArgumentNullException(nameof(log));
        Resolver = resolver ?? new SystemNameResolver();
        Time = time ?? TimeProvider.System;
        Outbound = new OutboundAddresses(options.External, options.ExternalRotation, options.Internal);
        Counters.PortRangeLabel = options.PortRange?.ToString() ?? "none";
    }

    /// <summary>What new sessions serve with; a reload swaps it whole (sessions keep the one they started with).</summary>
    public ServingConfig Config => Volatile.Read(ref _config);

    public ProxyOptions Options => Config.Options;

    public ProxyLog Log { get; }

    public UserStore? Users => Config.Users;

    public INameResolver Resolver { get; }

    public TimeProvider Time { get; }

    public OutboundAddresses Outbound { get; }

    public ProxyCounters Counters { get; } = new();

    /// <summary>The node's own addresses, followed live from <see cref="Start"/> on; never relayed to unless a rule names them.</summary>
    public LocalAddressSet NodeAddresses => _nodeAddresses?.Current ?? LocalAddressSet.Empty;

    private NodeAddressWatch? _nodeAddresses;

    /// <summary>The caps on concurrent RFC 1929 checks, per client address and in total (issue 13).</summary>
    public PasswordCheckLimiter PasswordChecks { get; } = new();

    /// <summary>The caps on pending UDP name lookups, per association and in total (issue 13).</summary>
    internal UdpLookupLimiter UdpLookups { get; } = new();

    /// <summary>Set SO_REUSEPORT on the listeners: a worker of <c>--workers</c> shares them with its siblings.</summary>
    public bool ReusePort { get; init; }

    /// <summary>The endpoints actually bound (ports resolved), in configuration order.</summary>
    public IReadOnlyList<IPEndPoint> LocalEndPoints => _listeners.Select(l => (IPEndPoint)l.LocalEndPoint!).ToArray();

    /// <summary>Binds every internal address. Throws with the address and the socket error on failure.</summary>
    public void Bind()
    {
        foreach (var spec in Options.Internal)
        {
            var addresses = spec.Address is not null
                ? [spec.Address]
                : OutboundAddresses.InterfaceAddresses(spec.Interface!).Where(a => !a.IsIPv6LinkLocal).ToArray();
            if (addresses.Length == 0)
            {
                throw new InvalidOperationException($"internal: interface '{spec.Interface}' has no address");
            }
            foreach (var address in addresses)
            {
                var endPoint = new IPEndPoint(address, spec.Port);
                var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                    if (ReusePort)
                    {
                        socket.SetRawSocketOption(SolSocket, SoReusePort, BitConverter.GetBytes(1));
                    }
                    if (address.AddressFamily == AddressFamily.InterNetworkV6)
                    {
                        socket.DualMode = address.Equals(IPAddress.IPv6Any);
                    }
                    // The VIP appears on lo only when l2bal starts: l2proxy may start first (docs/design.md#systemd).
                    socket.SetRawSocketOption(address.AddressFamily == AddressFamily.InterNetworkV6 ? (int)SocketOptionLevel.IPv6 : (int)SocketOptionLevel.IP,
                        address.AddressFamily == AddressFamily.InterNetworkV6 ? Ipv6FreeBind : IpFreeBind, BitConverter.GetBytes(1));
                    socket.Bind(endPoint);
                    socket.Listen(ListenBacklog);
                }
                catch (SocketException e)
                {
                    socket.Dispose();
                    throw new InvalidOperationException($"cannot listen on {endPoint}: {e.SocketErrorCode} ({e.Message})", e);
                }
                _listeners.Add(socket);
            }
        }
    }

    /// <summary>
    /// SIGHUP: new sessions serve with <paramref name="config"/>; open ones keep theirs. What needs a
    /// restart (listeners, users, logs) the caller has kept from the running options (ReloadPlan).
    /// </summary>
    public void Reload(ServingConfig config) => Volatile.Write(ref _config, config ?? throw new ArgumentNullException(nameof(config)));

    /// <summary>Starts accepting on the bound sockets.</summary>
    public void Start()
    {
        _nodeAddresses = NodeAddressWatch.Start(Log);
        var period = SweepPeriod(Options);
        _sweep = Time.CreateTimer(_ => Sweep(), null, period, period);
        foreach (var listener in _listeners)
        {
            Log.Listening(listener.LocalEndPoint!);
            _acceptLoops.Add(AcceptLoopAsync(listener));
        }
    }

    private static TimeSpan SweepPeriod(ProxyOptions options)
    {
        // Timeouts are enforced to within a quarter of the shortest one, at most 1 s late.
        var shortest = options.ConnectTimeout > TimeSpan.Zero && options.ConnectTimeout < options.NegotiateTimeout
            ? options.ConnectTimeout : options.NegotiateTimeout;
        if (options.IoTimeout > TimeSpan.Zero && options.IoTimeout < shortest)
        {
            shortest = options.IoTimeout;
        }
        var quarter = shortest / 4;
        return quarter < TimeSpan.FromMilliseconds(50) ? TimeSpan.FromMilliseconds(50)
            : quarter > TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : quarter;
    }

    /// <summary>The first pause after an accept loop's error; it doubles while errors repeat, up to <see cref="MaxAcceptBackoff"/>.</summary>
    internal static readonly TimeSpan MinAcceptBackoff = TimeSpan.FromMilliseconds(50);

    /// <summary>1 s: a full descriptor table frees within seconds as sessions end; the loop must not spin a core meanwhile.</summary>
    internal static readonly TimeSpan MaxAcceptBackoff = TimeSpan.FromSeconds(1);

    private async Task AcceptLoopAsync(Socket listener)
    {
        var endPoint = listener.LocalEndPoint!;
        var backoff = MinAcceptBackoff;
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                var client = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
                Admit(client);
                backoff = MinAcceptBackoff;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException && _stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // EMFILE, or anything else: count, log (throttled), back off so a full fd table does not spin the CPU, go on.
                Counters.LoopError(ProxyLoop.Accept);
                Log.LoopFailed(ProxyLoop.Accept, endPoint.ToString()!, e is SocketException s ? s.SocketErrorCode.ToString() : e.ToString(), backoff);
                try
                {
                    await Task.Delay(backoff, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                backoff = backoff * 2 > MaxAcceptBackoff ? MaxAcceptBackoff : backoff * 2;
            }
        }
    }

    private void Admit(Socket client)
    {
        IPEndPoint remote, local;
        try
        {
            remote = (IPEndPoint)client.RemoteEndPoint!;
            local = (IPEndPoint)client.LocalEndPoint!;
        }
        catch
        {
            // A connection reset between accept and here has no addresses left to read.
            client.Dispose();
            throw;
        }
        var remoteAddress = OutboundAddresses.Normalize(remote.Address);
        Counters.SessionStarted();
        string? refusal = null;
        var verdict = RuleEvaluator.EvaluateClient(Options.ClientRules, remote, local);
        // The node's own health probe (l2bal probes the VIP from the VIP) connects from the very address it
        // reached: admitted for the method negotiation only when no client rule passes it (docs/sockd-conf.md#health-probe).
        bool probeOnly = !verdict.Passed && remoteAddress.Equals(OutboundAddresses.Normalize(local.Address));
        if (!verdict.Passed && !probeOnly)
        {
            refusal = verdict.Rule is { } rule ? $"client rule #{rule.Number} (line {rule.Line})" : "no client rule passes it";
            Counters.SessionEnded(SessionOutcome.ClientBlocked);
        }
        else if (_sessions.Count >= Options.MaxClients)
        {
            refusal = $"maximum of {Options.MaxClients} clients reached";
            Counters.SessionEnded(SessionOutcome.LimitReached);
        }
        else if (_perAddress.AddOrUpdate(remoteAddress, 1, (_, n) => n + 1) > Options.MaxClientsPerAddress)
        {
            ReleaseAddress(remoteAddress);
            refusal = $"maximum of {Options.MaxClientsPerAddress} clients from {remoteAddress} reached";
            Counters.SessionEnded(SessionOutcome.LimitReached);
        }
        if (refusal is not null)
        {
            Log.ClientRefused(remote, local, refusal);
            client.Dispose();
            return;
        }
        client.NoDelay = true;
        var session = new SocksSession(this, client, remote, local, verdict.Log) { ProbeOnly = probeOnly, GssapiRule = verdict.Gssapi, Id = Interlocked.Increment(ref _nextSessionId) };
        _sessions.TryAdd(session, 0);
        _ = session.RunAsync();
    }

    /// <summary>The sessions open now (issue 19: the migration service lists and moves them).</summary>
    internal ICollection<SocksSession> Sessions => _sessions.Keys;

    /// <summary>
    /// Takes in a session restored from another node (issue 19): both legs are live sockets; it is
    /// counted and limited per client address as an accepted one, and relays from <paramref name="resume"/>.
    /// The legs' endpoints come from the moved state, not from the sockets: a getpeername on a leg that its end
    /// reset since the thaw would fail (ENOTCONN) before the session exists to end it.
    /// </summary>
    internal void AdoptMovedIn(Socket client, Socket target, Migration.SessionState state, RelayResult resume) =>
        _ = MovedInSession(client, state.Legs[0]).RunMovedInAsync(target, state.Legs[1].Remote, resume);

    /// <summary>Starts a UDP association restored from another node (its slot reserved at the restore), as <see cref="AdoptMovedIn"/> a relay.</summary>
    internal void AdoptMovedInUdp(Socket control, Migration.SessionState state, Socket relay, Socket? outbound4, Socket? outbound6) =>
        _ = MovedInSession(control, state.Legs[0]).RunMovedInUdpAsync(state.Udp!.Value, relay, outbound4, outbound6);

    /// <summary>A session for a connection restored from another node: counted, listed, its client rule's log.</summary>
    private SocksSession MovedInSession(Socket client, Migration.TcpLegState leg)
    {
        var remote = leg.Remote;
        var local = leg.Local;
        // Built before anything is counted: a failure here (a lost session, MigrationService.Thaw) leaves no count behind.
        var log = RuleEvaluator.EvaluateClient(Options.ClientRules, remote, local).Log;
        var session = new SocksSession(this, client, remote, local, log) { Id = Interlocked.Increment(ref _nextSessionId) };
        Counters.SessionStarted();
        Counters.MigratedIn();
        _perAddress.AddOrUpdate(OutboundAddresses.Normalize(remote.Address), 1, (_, n) => n + 1);
        _sessions.TryAdd(session, 0);
        return session;
    }

    internal void SessionFinished(SocksSession session, SessionOutcome outcome)
    {
        _sessions.TryRemove(session, out _);
        ReleaseAddress(OutboundAddresses.Normalize(session.Client.Address));
        Counters.SessionEnded(outcome);
    }

    private void ReleaseAddress(IPAddress address)
    {
        while (_perAddress.TryGetValue(address, out var n))
        {
            if (n <= 1 ? _perAddress.TryRemove(new KeyValuePair<IPAddress, int>(address, n)) : _perAddress.TryUpdate(address, n - 1, n))
            {
                return;
            }
        }
    }

    internal bool TryReserveUdpAssociation()
    {
        if (Interlocked.Increment(ref _udpAssociations) > Options.MaxUdpAssociations)
        {
            Interlocked.Decrement(ref _udpAssociations);
            return false;
        }
        return true;
    }

    internal void ReleaseUdpAssociation() => Interlocked.Decrement(ref _udpAssociations);

    private void Sweep()
    {
        var now = Environment.TickCount64;
        foreach (var session in _sessions.Keys)
        {
            session.CheckDeadline(now);
        }
    }

    /// <summary>Stops accepting and closes every session.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var listener in _listeners)
        {
            listener.Dispose();
        }
        await Task.WhenAll(_acceptLoops).ConfigureAwait(false);
        if (_sweep is not null)
        {
            await _sweep.DisposeAsync().ConfigureAwait(false);
        }
        foreach (var session in _sessions.Keys)
        {
            session.Abort(SessionOutcome.Shutdown);
        }
        _nodeAddresses?.Dispose();
        _stopping.Dispose();
    }
}

/// <summary>The options and the users file a session serves with, read together at its start.</summary>
public sealed record ServingConfig(ProxyOptions Options, UserStore? Users);
