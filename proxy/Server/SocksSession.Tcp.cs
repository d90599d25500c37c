using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Relay;
using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Server;

/// <summary>CONNECT and BIND (SOCKS4, 4a and 5).</summary>
internal sealed partial class SocksSession
{
    /// <summary>How long a BIND waits for the target's connection; 2 min, a generous bound for FTP-style callbacks.</summary>
    private static readonly TimeSpan BindAcceptTimeout = TimeSpan.FromMinutes(2);

    private async Task<SessionOutcome> ConnectAsync(SocksEndpoint destination)
    {
        var what = CommandName(RuleCommand.Connect);
        var addresses = await ResolveAsync(destination).ConfigureAwait(false);
        if (addresses.Length == 0)
        {
            await TrySendReplyAsync(ReplyCode.HostUnreachable, null).ConfigureAwait(false);
            Log.SessionFailed(_clientRuleLog, what, Client, destination.ToString(), SessionOutcome.ResolveFailed, "name does not resolve");
            return SessionOutcome.ResolveFailed;
        }
        // Every address that will be dialled passes the rules, not only the first (issue 13): the refused are
        // dropped from the list (in place, the array is this request's own), and none left is a refusal.
        RuleVerdict verdict = default;
        RuleVerdict? refusal = null;
        int dial = 0;
        foreach (var address in addresses)
        {
            var v = Evaluate(RuleCommand.Connect, Client, destination, address, RuleProtocol.Tcp);
            if (v.Passed)
            {
                verdict = dial == 0 ? v : verdict;
                addresses[dial++] = address;
            }
            else
            {
                refusal ??= v;
            }
        }
        if (destination.Host is not null && dial < addresses.Length)
        {
            for (int i = dial; i < addresses.Length; i++)
            {
                _server.Counters.ResolvedAddressSkipped();
            }
            Log.ResolvedAddressesSkipped(what, Client, destination.ToString(), addresses.Length - dial, dial);
        }
        if (dial == 0)
        {
            LogRefusal(refusal!.Value, RuleCommand.Connect, Client, destination);
            CountRefusal(refusal!.Value);
            await TrySendReplyAsync(ReplyCode.NotAllowedByRuleset, null).ConfigureAwait(false);
            return SessionOutcome.SocksBlocked;
        }
        Socket? target = null;
        var lastError = SocketError.HostUnreachable;
        bool inRange = false, exhausted = false;
        for (int i = 0; i < dial; i++)
        {
            var address = addresses[i];
            var socket = Own(new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
            if (_server.Outbound.For(address.AddressFamily, Local.Address) is { } source)
            {
                // Single-IP mode: the source is the shared VIP, so its port comes from this node's slice.
                var range = _server.Outbound.IsShared(source, Local.Address) ? Options.PortRange : null;
                inRange = range is not null;
                try
                {
                    PortBinder.BindForConnect(socket, source, range);
                }
                catch (SocketException e)
                {
                    lastError = e.SocketErrorCode;
                    exhausted |= inRange && PortBinder.IsExhausted(lastError);
                    socket.Dispose();
                    continue;
                }
            }
            try
            {
                // timeout.connect is enforced by the server's sweep (CheckDeadline), not a timer per connect.
                Volatile.Write(ref _connectDeadline, Environment.TickCount64 + (long)Options.ConnectTimeout.TotalMilliseconds);
                Volatile.Write(ref _connecting, socket);
                await socket.ConnectAsync(new IPEndPoint(address, destination.Port)).ConfigureAwait(false);
                if (Interlocked.Exchange(ref _connecting, null) is null)
                {
                    // The sweep took the socket (and closed it) just as the connect completed.
                    throw new SocketException((int)SocketError.TimedOut);
                }
                target = socket;
                break;
            }
            catch (Exception e) when (!Aborted && e is SocketException or ObjectDisposedException)
            {
                // Closed by the sweep: the connect timed out; else the connect's own error.
                lastError = Interlocked.Exchange(ref _connecting, null) is null ? SocketError.TimedOut
                    : e is SocketException se ? se.SocketErrorCode : SocketError.OperationAborted;
                // The kernel found no port of the range free for this 4-tuple (IP_LOCAL_PORT_RANGE).
                exhausted |= inRange && lastError == SocketError.AddressNotAvailable;
                socket.Dispose();
            }
        }
        if (target is null && exhausted)
        {
            return await RangeExhaustedAsync(PortRangeUse.Connect, verdict.Log, what, destination.ToString(), SessionOutcome.ConnectFailed).ConfigureAwait(false);
        }
        if (target is null)
        {
            var code = SocksErrors.FromSocketError(lastError);
            await TrySendReplyAsync(code, null).ConfigureAwait(false);
            Log.SessionFailed(verdict.Log, what, Client, destination.ToString(), SessionOutcome.ConnectFailed, $"{lastError} (reply {code})");
            return SessionOutcome.ConnectFailed;
        }
        target.NoDelay = true;
        if (inRange)
        {
            HoldRangePort();
        }
        var bound = (IPEndPoint)target.LocalEndPoint!;
        await SendReplyAsync(ReplyCode.Succeeded, bound).ConfigureAwait(false);
        _server.Counters.HandshakeCompleted(Elapsed);
        if ((verdict.Log & RuleLog.Connect) != 0)
        {
            // Only built when logged: three endpoint strings per CONNECT are measurable at thousands per second.
            Log.RequestPassed(in verdict, what, Client, $"-> {Local} => {bound} -> {target.RemoteEndPoint}");
        }
        _relayKind = MovableKind.Connect;
        return await RelayAsync(target, verdict.Log, what, destination).ConfigureAwait(false);
    }

    private async Task<SessionOutcome> BindAsync(SocksEndpoint expected)
    {
        var what = CommandName(RuleCommand.Bind);
        var verdict = Check(RuleCommand.Bind, Client, expected, expected.Address, RuleProtocol.Tcp);
        if (!verdict.Passed)
        {
            CountRefusal(in verdict);
            await TrySendReplyAsync(ReplyCode.NotAllowedByRuleset, null).ConfigureAwait(false);
            return SessionOutcome.SocksBlocked;
        }
        var family = expected.Address?.AddressFamily ?? Local.AddressFamily;
        if (_version == 4)
        {
            family = AddressFamily.InterNetwork;
        }
        // The first reply tells the client where the target must connect: an address the target can reach.
        var address = _server.Outbound.For(family, Local.Address)
            ?? RouteSource(expected.Address)
            ?? (Local.AddressFamily == family ? Local.Address : null);
        if (address is null)
        {
            await TrySendReplyAsync(ReplyCode.AddressTypeNotSupported, null).ConfigureAwait(false);
            Log.SessionFailed(verdict.Log, what, Client, expected.ToString(), SessionOutcome.BindFailed, $"no local {family} address to listen on");
            return SessionOutcome.BindFailed;
        }
        var listener = Own(new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        try
        {
            PortBinder.Bind(listener, address, Options.PortRange);
            listener.Listen(1);
        }
        catch (SocketException e) when (Options.PortRange is not null && PortBinder.IsExhausted(e.SocketErrorCode))
        {
            return await RangeExhaustedAsync(PortRangeUse.Bind, verdict.Log, what, expected.ToString(), SessionOutcome.BindFailed).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            await TrySendReplyAsync(ReplyCode.GeneralFailure, null).ConfigureAwait(false);
            Log.SessionFailed(verdict.Log, what, Client, expected.ToString(), SessionOutcome.BindFailed, $"listen on {address}: {e.SocketErrorCode}");
            return SessionOutcome.BindFailed;
        }
        if (Options.PortRange is not null)
        {
            // The accepted connection keeps the listener's port until the session ends.
            HoldRangePort();
        }
        var listening = (IPEndPoint)listener.LocalEndPoint!;
        await SendReplyAsync(ReplyCode.Succeeded, listening).ConfigureAwait(false);
        _server.Counters.HandshakeCompleted(Elapsed);
        Log.RequestPassed(in verdict, what, Client, $"-> {Local} => listening on {listening}");

        Socket peerSocket;
        using (var timeout = new CancellationTokenSource(BindAcceptTimeout))
        {
            try
            {
                peerSocket = Own(await listener.AcceptAsync(timeout.Token).ConfigureAwait(false));
            }
            catch (OperationCanceledException) when (!Aborted)
            {
                await TrySendReplyAsync(ReplyCode.TtlExpired, null).ConfigureAwait(false);
                Log.SessionFailed(verdict.Log, what, Client, expected.ToString(), SessionOutcome.BindFailed, "no connection arrived");
                return SessionOutcome.BindFailed;
            }
        }
        listener.Dispose();
        var peer = (IPEndPoint)peerSocket.RemoteEndPoint!;
        peer = new IPEndPoint(OutboundAddresses.Normalize(peer.Address), peer.Port);
        // SOCKS4 (and Dante for v5): the connecting host must be the one the client named, when it named one.
        if (expected.Address is { } named && !named.Equals(IPAddress.Any) && !named.Equals(IPAddress.IPv6Any) && !named.Equals(peer.Address))
        {
            await TrySendReplyAsync(ReplyCode.NotAllowedByRuleset, null).ConfigureAwait(false);
            Log.SessionFailed(verdict.Log, what, Client, expected.ToString(), SessionOutcome.SocksBlocked, $"connection came from {peer}, not from {named}");
            return SessionOutcome.SocksBlocked;
        }
        // A BIND that named no address is one to whoever connects: that peer passes the rules as its destination.
        var peerVerdict = (expected.Address is { } asked && !asked.Equals(IPAddress.Any) && !asked.Equals(IPAddress.IPv6Any))
            || ProtectedDestinations.Classify(peer.Address, _server.NodeAddresses) == DestinationClass.Ordinary
            ? verdict
            : Check(RuleCommand.Bind, Client, SocksEndpoint.FromEndPoint(peer), peer.Address, RuleProtocol.Tcp);
        if (!peerVerdict.Passed)
        {
            CountRefusal(in peerVerdict);
            await TrySendReplyAsync(ReplyCode.NotAllowedByRuleset, null).ConfigureAwait(false);
            return SessionOutcome.SocksBlocked;
        }
        var replyVerdict = Check(RuleCommand.BindReply, peer, SocksEndpoint.FromEndPoint(Client), Client.Address, RuleProtocol.Tcp);
        if (!replyVerdict.Passed)
        {
            await TrySendReplyAsync(ReplyCode.NotAllowedByRuleset, null).ConfigureAwait(false);
            return SessionOutcome.SocksBlocked;
        }
        peerSocket.NoDelay = true;
        await SendReplyAsync(ReplyCode.Succeeded, peer).ConfigureAwait(false);
        Log.RequestPassed(in replyVerdict, CommandName(RuleCommand.BindReply), peer, $"-> {listening} => {Local} -> {Client}");
        _relayKind = MovableKind.Bind;
        return await RelayAsync(peerSocket, verdict.Log, what, peer).ConfigureAwait(false);
    }

    /// <summary>No port of the range was free: counted, logged (rate-limited), refused with a general failure (SOCKS4: 91).</summary>
    private async Task<SessionOutcome> RangeExhaustedAsync(PortRangeUse use, RuleLog log, string what, string destination, SessionOutcome outcome)
    {
        _server.Counters.PortRangeExhaustedBy(use);
        var range = Options.PortRange?.ToString() ?? "none";
        Log.PortRangeExhausted(use, range, Client, destination);
        await TrySendReplyAsync(ReplyCode.GeneralFailure, null).ConfigureAwait(false);
        Log.SessionFailed(log, what, Client, destination, outcome, $"port range {range} exhausted");
        return outcome;
    }

    /// <summary>Counts one port of the range in the gauge until the session closes its sockets.</summary>
    private void HoldRangePort()
    {
        _server.Counters.PortRangeTaken();
        Own(new RangePort(_server.Counters));
    }

    /// <summary>One port of the range held by this session; released once, when the session closes.</summary>
    private sealed class RangePort(ProxyCounters counters) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                counters.PortRangeReleased();
            }
        }
    }

    /// <summary>The source address the kernel's routing would pick to reach <paramref name="destination"/>.</summary>
    private static IPAddress? RouteSource(IPAddress? destination)
    {
        if (destination is null || destination.Equals(IPAddress.Any) || destination.Equals(IPAddress.IPv6Any))
        {
            return null;
        }
        try
        {
            // A connected UDP socket sends nothing; connect() only runs the route lookup.
            using var probe = new Socket(destination.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            probe.Connect(new IPEndPoint(destination, 9));
            return ((IPEndPoint)probe.LocalEndPoint!).Address;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>Relays until both sides are done; <paramref name="destination"/> is formatted only if the end is logged.</summary>
    private async Task<SessionOutcome> RelayAsync(Socket target, RuleLog log, string what, object destination)
    {
        EnterRelay();
        if (Protected)
        {
            return await ProtectedRelayAsync(target, log, what, destination).ConfigureAwait(false);
        }
        var early = _handshake.Remaining;
        if (!early.IsEmpty)
        {
            // Data the client sent right behind its request goes first.
            await target.SendAsync(early, SocketFlags.None).ConfigureAwait(false);
            Relayed(fromClient: true, early.Length);
        }
        // The handshake buffer goes back to the pool now: an established session holds no buffer.
        _handshake.Dispose();
        return await RelayMovableAsync(target, log, what, destination, early.Length, null).ConfigureAwait(false);
    }

    /// <summary>
    /// The relay of a session that may move (issue 19): each run can be paused by the migration
    /// service; a paused run either ends here (the session moved) or resumes with what it held.
    /// <paramref name="resume"/> starts from a moved-in session's held bytes.
    /// </summary>
    private async Task<SessionOutcome> RelayMovableAsync(Socket target, RuleLog log, string what, object destination, long early, RelayResult? resume)
    {
        _target = target;
        RelayResult result;
        var moved = false;
        while (true)
        {
            using var pause = new RelayPause();
            var run = new RelayRun(pause);
            Volatile.Write(ref _run, run);
            result = await TcpRelay.RunAsync(_client, target, this, pause, resume).ConfigureAwait(false);
            Volatile.Write(ref _run, null);
            if (!result.Paused)
            {
                run.Ended(result);
                break;
            }
            // Paused for a move: the migration service froze the sockets and decides.
            if (await run.StoppedAsync(result).ConfigureAwait(false))
            {
                moved = true;
                break;
            }
            resume = result;
        }
        // The counters have the bytes already (TcpRelay counts each chunk as it moves).
        var up = result.FromClient + early;
        var how = (log & RuleLog.Disconnect) == 0 && (_clientRuleLog & RuleLog.Disconnect) == 0 ? string.Empty
            : moved ? "moved to another node" : Aborted ? ((SessionOutcome)Volatile.Read(ref _abortReason)).ToString() : result.Describe();
        log |= _clientRuleLog & RuleLog.Disconnect;
        if ((log & RuleLog.Disconnect) != 0)
        {
            Log.SessionEnded(log, what, Client, destination.ToString()!, up, result.ToClient, Elapsed, how);
        }
        return moved ? SessionOutcome.Migrated : result.Failed ? SessionOutcome.RelayError : SessionOutcome.Completed;
    }

    /// <summary>The relay of a protected GSS-API session: early bytes are encapsulation messages too.</summary>
    private async Task<SessionOutcome> ProtectedRelayAsync(Socket target, RuleLog log, string what, object destination)
    {
        EnterRelay();
        // Listed as a session that stays: its GSS-API context cannot be exported.
        _target = target;
        var early = _handshake.Remaining.ToArray();
        _handshake.Dispose();
        var result = await GssapiRelay.RunAsync(_client, target, this, _gss!, _protection, early).ConfigureAwait(false);
        var how = Aborted ? ((SessionOutcome)Volatile.Read(ref _abortReason)).ToString() : result.Describe();
        log |= _clientRuleLog & RuleLog.Disconnect;
        if ((log & RuleLog.Disconnect) != 0)
        {
            Log.SessionEnded(log, what, Client, destination.ToString()!, result.FromClient, result.ToClient, Elapsed, how);
        }
        return result.Failed ? SessionOutcome.RelayError : SessionOutcome.Completed;
    }
}
