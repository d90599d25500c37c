using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Auth;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Server;

/// <summary>
/// One client connection: negotiation (SOCKS4, 4a or 5, method selection, RFC 1929), the rule
/// check, then the command (CONNECT, BIND, UDP ASSOCIATE) and its relay. Split by phase into
/// partial files (docs/conventions.md §29). Every socket the session opens is tracked, so an abort (timeout,
/// shutdown) closes them all and every pending operation ends.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "RunAsync owns the session's lifetime and disposes the handshake buffer in its finally block.")]
internal sealed partial class SocksSession
{
    private const int NoAbort = -1;
    private readonly ProxyServer _server;
    private readonly ServingConfig _config;
    private readonly Socket _client;
    private readonly RuleLog _clientRuleLog;
    private readonly long _startTimestamp = Stopwatch.GetTimestamp();
    private readonly List<IDisposable> _owned = [];
    private readonly HandshakeBuffer _handshake = new();
    private int _abortReason = NoAbort;
    private readonly long _negotiateDeadline;
    private long _lastActivity;
    private Socket? _connecting;
    private long _connectDeadline;
    private bool _relaying;
    private int _version;
    private MethodKind _method = MethodKind.None;
    private string? _user;

    public SocksSession(ProxyServer server, Socket client, IPEndPoint remote, IPEndPoint local, RuleLog clientRuleLog)
    {
        _server = server;
        _config = server.Config;
        _client = client;
        _clientRuleLog = clientRuleLog;
        Client = new IPEndPoint(OutboundAddresses.Normalize(remote.Address), remote.Port);
        Local = new IPEndPoint(OutboundAddresses.Normalize(local.Address), local.Port);
        _owned.Add(client);
        _negotiateDeadline = Environment.TickCount64 + (long)server.Options.NegotiateTimeout.TotalMilliseconds;
    }

    /// <summary>The client's address and port.</summary>
    public IPEndPoint Client { get; }

    /// <summary>The local address and port the client connected to (in a cluster, the VIP).</summary>
    public IPEndPoint Local { get; }

    /// <summary>
    /// Admitted only for the SOCKS5 method negotiation: a connection from this node to its own address
    /// that no client rule passes (l2bal's health probe, docs/sockd-conf.md#health-probe); any request is refused.
    /// </summary>
    public bool ProbeOnly { get; init; }

    /// <summary>The configuration this session started with: a reload applies to new sessions only.</summary>
    private ProxyOptions Options => _config.Options;

    private ProxyLog Log => _server.Log;

    private bool Aborted => Volatile.Read(ref _abortReason) != NoAbort;

    public async Task RunAsync()
    {
        var outcome = SessionOutcome.InternalError;
        try
        {
            outcome = await NegotiateAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (Aborted)
        {
            _ = e;
        }
        catch (EndOfStreamException)
        {
            outcome = SessionOutcome.ClientClosedEarly;
            Log.NegotiationFailed(Client, outcome, "client closed during negotiation");
        }
        catch (GssapiException e)
        {
            // A per-message token of the request failed after authentication: counted as a GSS-API failure.
            outcome = SessionOutcome.AuthFailed;
            GssapiTokenFailed(e);
        }
        catch (InvalidDataException e)
        {
            outcome = SessionOutcome.Malformed;
            Log.NegotiationFailed(Client, outcome, e.Message);
        }
        catch (SocketException e) when (IsDisconnect(e.SocketErrorCode))
        {
            outcome = SessionOutcome.ClientClosedEarly;
            Log.NegotiationFailed(Client, outcome, e.SocketErrorCode.ToString());
        }
        catch (Exception e)
        {
            Log.Unexpected($"session {Client}", e);
        }
        finally
        {
            if (Aborted)
            {
                outcome = (SessionOutcome)Volatile.Read(ref _abortReason);
                if (outcome == SessionOutcome.NegotiateTimeout)
                {
                    Log.NegotiationFailed(Client, outcome, $"no complete request within {Options.NegotiateTimeout.TotalSeconds:0.###} s");
                }
            }
            CloseAll();
            _handshake.Dispose();
            _server.SessionFinished(this, outcome);
        }
    }

    /// <summary>
    /// Called by the server's sweep: closes an outgoing connect that outlived timeout.connect, and
    /// ends the session when its negotiate or io deadline passed.
    /// </summary>
    public void CheckDeadline(long now)
    {
        if (Volatile.Read(ref _connecting) is not null && now > Volatile.Read(ref _connectDeadline)
            && Interlocked.Exchange(ref _connecting, null) is { } connecting)
        {
            // timeout.connect: closing the socket ends its ConnectAsync; ConnectAsync reports TimedOut.
            connecting.Dispose();
        }
        if (!Volatile.Read(ref _relaying))
        {
            if (now > _negotiateDeadline)
            {
                Abort(SessionOutcome.NegotiateTimeout);
            }
        }
        else if (Options.IoTimeout > TimeSpan.Zero && now - Volatile.Read(ref _lastActivity) > (long)Options.IoTimeout.TotalMilliseconds)
        {
            Abort(SessionOutcome.IoTimeout);
        }
    }

    /// <summary>Ends the session for <paramref name="reason"/>: closes every socket it owns.</summary>
    public void Abort(SessionOutcome reason)
    {
        if (Interlocked.CompareExchange(ref _abortReason, (int)reason, NoAbort) == NoAbort)
        {
            CloseAll();
        }
    }

    /// <summary>Marks traffic for timeout.io; called by relays for every chunk or datagram.</summary>
    internal void Touch() => Volatile.Write(ref _lastActivity, Environment.TickCount64);

    /// <summary>
    /// Called by the TCP relay for every chunk it moved: marks traffic for timeout.io and counts the
    /// bytes at once, so the byte counters show sessions while they run, not only when they end.
    /// </summary>
    internal void Relayed(bool fromClient, long bytes)
    {
        Touch();
        if (fromClient)
        {
            _server.Counters.AddBytesFromClients(bytes);
        }
        else
        {
            _server.Counters.AddBytesToClients(bytes);
        }
    }

    /// <summary>Called by the TCP relay when a direction could not make its pipe and copies instead: counted and logged (throttled).</summary>
    internal void SpliceFellBack(string error)
    {
        _server.Counters.SpliceFellBack();
        Log.SpliceFallback(Client, error);
    }

    /// <summary>Tracks a socket (or other resource) that an abort must close.</summary>
    private T Own<T>(T resource)
        where T : IDisposable
    {
        lock (_owned)
        {
            _owned.Add(resource);
        }
        if (Aborted)
        {
            resource.Dispose();
        }
        return resource;
    }

    private void CloseAll()
    {
        IDisposable[] owned;
        lock (_owned)
        {
            owned = [.. _owned];
        }
        foreach (var resource in owned)
        {
            resource.Dispose();
        }
    }

    private void EnterRelay()
    {
        Touch();
        Volatile.Write(ref _relaying, true);
    }

    private TimeSpan Elapsed => Stopwatch.GetElapsedTime(_startTimestamp);

    private static bool IsDisconnect(SocketError error) =>
        error is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown
            or SocketError.OperationAborted or SocketError.Interrupted;

    private async Task<SessionOutcome> NegotiateAsync()
    {
        var first = await _handshake.PeekByteAsync(_client).ConfigureAwait(false);
        switch (first)
        {
            case -1:
                // A connect-and-close is a port check (load balancer, readiness probe), not an error.
                Log.Probed(Client);
                return SessionOutcome.ClientClosedEarly;
            case 5:
                _version = 5;
                return await NegotiateSocks5Async().ConfigureAwait(false);
            case 4:
                _version = 4;
                return await NegotiateSocks4Async().ConfigureAwait(false);
            default:
                Log.NegotiationFailed(Client, SessionOutcome.BadVersion, $"first byte 0x{first:x2} is no SOCKS version");
                return SessionOutcome.BadVersion;
        }
    }

    private async Task<SessionOutcome> NegotiateSocks5Async()
    {
        var (status, greeting, reason) = await _handshake.ReadAsync<Socks5Greeting>(_client, Socks5Codec.TryParseGreeting).ConfigureAwait(false);
        if (status != ParseStatus.Ok)
        {
            Log.NegotiationFailed(Client, SessionOutcome.Malformed, $"greeting: {reason}");
            return SessionOutcome.Malformed;
        }
        var selected = SelectMethod(greeting);
        await SendAsync(static (m, w) => Socks5Codec.WriteMethodSelection(m, w), selected).ConfigureAwait(false);
        if (selected == AuthMethod.NoAcceptableMethods)
        {
            Log.NegotiationFailed(Client, SessionOutcome.NoAcceptableMethod, "none of the offered methods is configured");
            return SessionOutcome.NoAcceptableMethod;
        }
        if (await _handshake.PeekByteAsync(_client).ConfigureAwait(false) < 0)
        {
            // Closed right after the method selection: a health probe's complete exchange (l2bal's socks5:// probe).
            Log.Probed(Client);
            return SessionOutcome.ClientClosedEarly;
        }
        if (ProbeOnly)
        {
            return await RefuseProbeOnlyAsync(replyToRequest: selected == AuthMethod.NoAuthentication).ConfigureAwait(false);
        }
        if (selected == AuthMethod.UsernamePassword)
        {
            var (authStatus, credentials, authReason) = await _handshake.ReadAsync<UserPassRequest>(_client, UserPassCodec.TryParseRequest).ConfigureAwait(false);
            if (authStatus != ParseStatus.Ok)
            {
                Log.NegotiationFailed(Client, SessionOutcome.Malformed, $"username/password request: {authReason}");
                return SessionOutcome.Malformed;
            }
            var (ok, limit) = await VerifyAsync(credentials).ConfigureAwait(false);
            await SendAsync(static (s, w) => UserPassCodec.WriteReply(s, w), ok).ConfigureAwait(false);
            if (limit is { } reached)
            {
                _server.Counters.PasswordCheckRefused(reached);
                Log.PasswordChecksLimited(Client, reached, reached == WorkLimit.PerClient ? _server.PasswordChecks.PerAddress : _server.PasswordChecks.Total);
                return SessionOutcome.LimitReached;
            }
            if (!ok)
            {
                Log.AuthFailed(Client, credentials.UserName);
                return SessionOutcome.AuthFailed;
            }
            _method = MethodKind.Username;
            _user = credentials.UserName;
        }
        else if (selected == AuthMethod.Gssapi && await AuthenticateGssapiAsync().ConfigureAwait(false) is { } refused)
        {
            return refused;
        }
        var (requestStatus, request, requestReason) = Protected
            ? await ReadProtectedRequestAsync().ConfigureAwait(false)
            : await _handshake.ReadAsync<Socks5Request>(_client, Socks5Codec.TryParseRequest).ConfigureAwait(false);
        if (requestStatus != ParseStatus.Ok)
        {
            // RFC 1928 section 6: answer unknown commands and address types with their codes.
            var (code, outcome) = requestReason switch
            {
                SocksRejection.BadCommand => (ReplyCode.CommandNotSupported, SessionOutcome.CommandNotSupported),
                SocksRejection.BadAddressType => (ReplyCode.AddressTypeNotSupported, SessionOutcome.AddressTypeNotSupported),
                _ => (ReplyCode.GeneralFailure, SessionOutcome.Malformed),
            };
            await TrySendReplyAsync(code, null).ConfigureAwait(false);
            Log.NegotiationFailed(Client, outcome, $"request: {requestReason}");
            return outcome;
        }
        _server.Counters.CommandRequested(request.Command);
        return request.Command switch
        {
            SocksCommand.Connect => await ConnectAsync(request.Destination).ConfigureAwait(false),
            SocksCommand.Bind => await BindAsync(request.Destination).ConfigureAwait(false),
            SocksCommand.UdpAssociate => await UdpAssociateAsync(request.Destination).ConfigureAwait(false),
            _ => SessionOutcome.CommandNotSupported,
        };
    }

    private async Task<SessionOutcome> NegotiateSocks4Async()
    {
        var (status, request, reason) = await _handshake.ReadAsync<Socks4Request>(_client, Socks4Codec.TryParseRequest).ConfigureAwait(false);
        if (status != ParseStatus.Ok)
        {
            var outcome = reason == SocksRejection.BadCommand ? SessionOutcome.CommandNotSupported : SessionOutcome.Malformed;
            await TrySendReplyAsync(ReplyCode.GeneralFailure, null).ConfigureAwait(false);
            Log.NegotiationFailed(Client, outcome, $"socks4 request: {reason}");
            return outcome;
        }
        if (ProbeOnly)
        {
            return await RefuseProbeOnlyAsync(replyToRequest: false).ConfigureAwait(false);
        }
        if (!Options.SocksMethods.Contains(MethodKind.None))
        {
            // SOCKS4 has no authentication: when every client must authenticate, refuse it.
            await TrySendReplyAsync(ReplyCode.NotAllowedByRuleset, null).ConfigureAwait(false);
            Log.NegotiationFailed(Client, SessionOutcome.NoAcceptableMethod, "SOCKS4 has no authentication and socksmethod requires one");
            return SessionOutcome.NoAcceptableMethod;
        }
        _server.Counters.CommandRequested(request.Command);
        return request.Command == SocksCommand.Bind
            ? await BindAsync(request.Destination).ConfigureAwait(false)
            : await ConnectAsync(request.Destination).ConfigureAwait(false);
    }

    /// <summary>
    /// Checks RFC 1929 credentials: a login that passed before costs nothing; any other takes a place under
    /// the caps on concurrent checks (<see cref="Auth.PasswordCheckLimiter"/>) or is refused, unchecked, with the cap it hit.
    /// </summary>
    private async ValueTask<(bool Ok, WorkLimit? Limit)> VerifyAsync(UserPassRequest credentials)
    {
        if (_config.Users is not { } users)
        {
            return (false, null);
        }
        if (users.IsKnownGood(credentials.UserName, credentials.Password))
        {
            return (true, null);
        }
        if (_server.PasswordChecks.TryEnter(Client.Address) is { } limit)
        {
            return (false, limit);
        }
        try
        {
            // PBKDF2 is deliberately slow: off the socket completion thread (Program turns inline completions on).
            return (await _server.PasswordChecks.RunAsync(() => users.Verify(credentials.UserName, credentials.Password)).ConfigureAwait(false), null);
        }
        finally
        {
            _server.PasswordChecks.Exit(Client.Address);
        }
    }

    private AuthMethod SelectMethod(in Socks5Greeting greeting)
    {
        // The server's order of preference decides (Dante: socksmethod order).
        foreach (var kind in Options.SocksMethods)
        {
            var wire = kind switch
            {
                MethodKind.Username => AuthMethod.UsernamePassword,
                MethodKind.Gssapi => AuthMethod.Gssapi,
                _ => AuthMethod.NoAuthentication,
            };
            if (greeting.Offers(wire) && (kind != MethodKind.Username || _config.Users is not null))
            {
                return wire;
            }
        }
        return AuthMethod.NoAcceptableMethods;
    }

    /// <summary>Writes one message built by <paramref name="write"/> to the client.</summary>
    private async ValueTask SendAsync<TState>(Action<TState, IBufferWriter<byte>> write, TState state)
    {
        // The reply is built in the handshake buffer's reply area: no allocation per reply.
        write(state, _handshake);
        if (Protected)
        {
            await SendProtectedAsync(_handshake.TakeReply()).ConfigureAwait(false);
            return;
        }
        await _client.SendAsync(_handshake.TakeReply(), SocketFlags.None).ConfigureAwait(false);
    }

    /// <summary>Sends the reply for this session's SOCKS version; <paramref name="bound"/> null means 0.0.0.0:0.</summary>
    private ValueTask SendReplyAsync(ReplyCode code, IPEndPoint? bound)
    {
        if (_version == 4)
        {
            var address = bound is not null && bound.AddressFamily == AddressFamily.InterNetwork ? bound.Address : IPAddress.Any;
            var reply = new Socks4Reply(SocksErrors.ToSocks4(code), address, (ushort)(bound?.Port ?? 0));
            return SendAsync(static (r, w) => Socks4Codec.WriteReply(in r, w), reply);
        }
        var endpoint = bound is null ? SocksEndpoint.FromAddress(IPAddress.Any, 0) : SocksEndpoint.FromEndPoint(bound);
        return SendAsync(static (r, w) => Socks5Codec.WriteReply(in r, w), new Socks5Reply(code, endpoint));
    }

    /// <summary>Sends a failure reply, ignoring a client that is already gone.</summary>
    private async ValueTask TrySendReplyAsync(ReplyCode code, IPEndPoint? bound)
    {
        try
        {
            await SendReplyAsync(code, bound).ConfigureAwait(false);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private string CommandName(RuleCommand command) => command switch
    {
        RuleCommand.Connect => _version == 4 ? "tcp/connect(v4)" : "tcp/connect",
        RuleCommand.Bind => _version == 4 ? "tcp/bind(v4)" : "tcp/bind",
        RuleCommand.BindReply => "tcp/bindreply",
        RuleCommand.UdpAssociate => "udp/udpassociate",
        _ => "udp/udpreply",
    };

    /// <summary>Resolves a name with timeout.negotiate's remaining budget bounded by the resolve timeout.</summary>
    private async ValueTask<IPAddress[]> ResolveAsync(SocksEndpoint destination)
    {
        if (destination.Address is { } address)
        {
            return [address];
        }
        using var cts = new CancellationTokenSource(Options.ResolveTimeout);
        try
        {
            var addresses = await _server.Resolver.ResolveAsync(destination.Host!, cts.Token).ConfigureAwait(false);
            return [.. addresses.Select(OutboundAddresses.Normalize)];
        }
        catch (OperationCanceledException)
        {
            return [];
        }
    }
}
