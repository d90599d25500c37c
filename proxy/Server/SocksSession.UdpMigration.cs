using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Migration;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Relay;

namespace L2Balance.Proxy.Server;

/// <summary>
/// The move of a UDP association (issue 19, docs/design.md#udp-associations): its control connection
/// freezes as a relay's legs do, its UDP sockets stop between datagrams, and the new node binds the
/// same VIP ports and resumes it with the client's learned address and the method and user its rules need.
/// </summary>
internal sealed partial class SocksSession
{
    /// <summary>How long a pause waits for a poller callback of the association already running (microseconds in practice).</summary>
    private static readonly TimeSpan PollerQuiesceTimeout = TimeSpan.FromSeconds(1);

    /// <summary>The association while it relays: listed as kind <c>udp</c>.</summary>
    private UdpAssociation? _association;

    /// <summary>The UDP association's state for a move, or null when this session is none (or its client's UDP address is unknown).</summary>
    internal UdpAssociationState? UdpStateForMove() =>
        Volatile.Read(ref _association)?.MoveState(MethodCode(_method), _user);

    /// <summary>The RFC 1928 code of a method, as the session state carries it.</summary>
    internal static byte MethodCode(MethodKind method) => method switch
    {
        MethodKind.Gssapi => 0x01,
        MethodKind.Username => 0x02,
        _ => 0x00,
    };

    /// <summary>The method of an RFC 1928 code in a session state; null for one this proxy does not negotiate.</summary>
    internal static MethodKind? MethodOf(byte code) => code switch
    {
        0x00 => MethodKind.None,
        0x01 => MethodKind.Gssapi,
        0x02 => MethodKind.Username,
        _ => null,
    };

    /// <summary>
    /// The association as <c>list</c> shows it: client and VIP of the control connection, then the relay's
    /// endpoint and the client's UDP address (the UDP flow that moves). Null until the client's UDP address is known.
    /// </summary>
    private MovableSession? MovableUdp(UdpAssociation association)
    {
        if (association.ClientUdp is not { } clientUdp)
        {
            return null;
        }
        var relay = association.RelayEndPoint;
        // Single-IP mode: every target-facing socket (and the next one made) is on the VIP, so replies reach every node.
        var next = _server.Outbound.For(Local.AddressFamily, Local.Address);
        var singleIp = association.OutboundLocals().All(e => OutboundAddresses.Normalize(e.Address).Equals(Local.Address))
            && next is not null && OutboundAddresses.Normalize(next).Equals(Local.Address);
        MigrationRefusal? stays = Protected ? MigrationRefusal.GssapiProtected
            : !singleIp || !relay.Address.Equals(Local.Address) ? MigrationRefusal.NotSingleIp
            : CurrentRun is null ? MigrationRefusal.NotEstablished
            : null;
        return new MovableSession(Id, MovableKind.Udp, Client, Local, relay, clientUdp, TcpRepair.QueuedBytes(_client), stays);
    }

    /// <summary>
    /// Waits for the control connection to close, pausable for a move like a relay's run: true when the
    /// association moved (the migration service froze and closed the control connection), false when it ended here.
    /// </summary>
    private async Task<bool> RelayAssociationMovableAsync(UdpAssociation association)
    {
        Volatile.Write(ref _association, association);
        var stopped = new RelayResult(new PumpResult(0, PumpEnd.Paused, SocketError.Success), new PumpResult(0, PumpEnd.Paused, SocketError.Success));
        try
        {
            while (true)
            {
                using var pause = new RelayPause();
                var run = new RelayRun(pause);
                Volatile.Write(ref _run, run);
                var paused = await WaitForControlCloseAsync(pause.Token).ConfigureAwait(false);
                Volatile.Write(ref _run, null);
                if (!paused || Aborted)
                {
                    run.Ended(new RelayResult(new PumpResult(0, PumpEnd.ReadFin, SocketError.Success), new PumpResult(0, PumpEnd.Aborted, SocketError.Success)));
                    return false;
                }
                try
                {
                    association.Pause(PollerQuiesceTimeout);
                }
                catch (Exception e) when (e is ObjectDisposedException or SocketException or IOException)
                {
                    // Aborted meanwhile: nothing to move.
                    run.Ended(new RelayResult(new PumpResult(0, PumpEnd.Aborted, SocketError.Success), new PumpResult(0, PumpEnd.Aborted, SocketError.Success)));
                    return false;
                }
                if (await run.StoppedAsync(stopped).ConfigureAwait(false))
                {
                    return true;
                }
                association.Resume();
            }
        }
        finally
        {
            Volatile.Write(ref _association, null);
        }
    }

    /// <summary>
    /// Runs a UDP association restored from another node: its control connection is live, its UDP sockets
    /// are bound to the old node's VIP ports and marked; it relays with the client's address known and may move again.
    /// The association's slot was reserved at the restore (<see cref="ProxyServer.TryReserveUdpAssociation"/>).
    /// </summary>
    internal async Task RunMovedInUdpAsync(UdpAssociationState state, Socket relay, Socket? outbound4, Socket? outbound6)
    {
        var outcome = SessionOutcome.InternalError;
        var what = CommandName(Rules.RuleCommand.UdpAssociate);
        _server.Counters.UdpAssociationStarted();
        try
        {
            Own(relay);
            if (outbound4 is not null)
            {
                Own(outbound4);
            }
            if (outbound6 is not null)
            {
                Own(outbound6);
            }
            _method = MethodOf(state.Method) ?? MethodKind.None;
            _user = state.User;
            _handshake.Dispose();
            var association = new UdpAssociation(this, relay, SocksEndpoint.FromEndPoint(new IPEndPoint(IPAddress.Any, 0)));
            association.Adopt(state.Client, outbound4, outbound6);
            EnterRelay();
            outcome = await RunAssociationAsync(association, what, $"relay {state.Relay} (moved in)").ConfigureAwait(false);
        }
        catch (Exception e)
        {
            if (!Aborted)
            {
                Log.Unexpected($"session {Client} (udp moved in)", e);
            }
        }
        finally
        {
            if (Aborted)
            {
                outcome = (SessionOutcome)Volatile.Read(ref _abortReason);
            }
            _server.Counters.UdpAssociationEnded();
            _server.ReleaseUdpAssociation();
            CloseAll();
            _server.SessionFinished(this, outcome);
        }
    }

    /// <summary>The association's side of a move: its endpoints, the pause between datagrams, and adopting restored sockets.</summary>
    private sealed partial class UdpAssociation
    {
        /// <summary>Rounds of reading what the kernel queued before the pause: bounded, as replies may still arrive.</summary>
        private const int DrainRounds = 16;

        /// <summary>The client's UDP address, once known (announced in the request, or learned from its first datagram).</summary>
        public IPEndPoint? ClientUdp => Volatile.Read(ref _clientUdp);

        /// <summary>The client-facing relay socket's endpoint (IPv4 addresses as such, not mapped).</summary>
        public IPEndPoint RelayEndPoint => Normalized((IPEndPoint)Relay.LocalEndPoint!);

        /// <summary>The endpoints of the target-facing sockets made so far.</summary>
        public IReadOnlyList<IPEndPoint> OutboundLocals()
        {
            lock (_lock)
            {
                return [.. _targets.Select(t => (IPEndPoint)t.Socket.LocalEndPoint!)];
            }
        }

        /// <summary>What a move carries of this association; null while the client's UDP address is unknown.</summary>
        public UdpAssociationState? MoveState(byte method, string? user)
        {
            if (ClientUdp is not { } client)
            {
                return null;
            }
            lock (_lock)
            {
                return new UdpAssociationState(Normalized(client), RelayEndPoint,
                    _outbound4 is { } o4 ? Normalized((IPEndPoint)o4.Socket.LocalEndPoint!) : null,
                    _outbound6 is { } o6 ? (IPEndPoint)o6.Socket.LocalEndPoint! : null,
                    method, user);
            }
        }

        /// <summary>
        /// Stops relaying for a move: the sockets leave the poller, a callback already running finishes, and the
        /// datagrams the kernel queued for them are relayed from here (bounded), so none already taken in is lost.
        /// </summary>
        public void Pause(TimeSpan quiesce)
        {
            TargetSide[] targets;
            lock (_lock)
            {
                _paused = true;
                targets = [.. _targets];
            }
            Interlocked.Exchange(ref _pausing, 1);
            UdpPoller.Shared.Unregister(Relay, _relayKey);
            foreach (var target in targets)
            {
                UdpPoller.Shared.Unregister(target.Socket, target.Key);
            }
            var deadline = Environment.TickCount64 + (long)quiesce.TotalMilliseconds;
            var spin = new SpinWait();
            while (Volatile.Read(ref _inPoller) != 0)
            {
                if (Environment.TickCount64 > deadline)
                {
                    throw new IOException("a poller callback of the association did not return");
                }
                spin.SpinOnce();
            }
            var buffer = new byte[UdpPoller.BufferSize];
            for (int round = 0; round < DrainRounds; round++)
            {
                bool any = false;
                if (Relay.Available > 0)
                {
                    ReceiveFromClient(buffer);
                    any = true;
                }
                foreach (var target in targets.Where(t => t.Socket.Available > 0))
                {
                    target.ReceiveFromTargets(buffer);
                    any = true;
                }
                if (!any)
                {
                    break;
                }
            }
        }

        /// <summary>The move did not happen: the sockets join the poller again.</summary>
        public void Resume()
        {
            TargetSide[] targets;
            lock (_lock)
            {
                _paused = false;
                targets = [.. _targets];
            }
            Interlocked.Exchange(ref _pausing, 0);
            _relayKey = UdpPoller.Shared.Register(Relay, this);
            foreach (var target in targets)
            {
                target.Key = UdpPoller.Shared.Register(target.Socket, target);
            }
        }

        /// <summary>
        /// Takes a moved-in association's state before <see cref="Start"/>: the client's UDP address (known, so
        /// replies go out at once) and the target-facing sockets restored on the old node's ports.
        /// </summary>
        public void Adopt(IPEndPoint client, Socket? outbound4, Socket? outbound6)
        {
            _clientUdp = client;
            var address = Relay.AddressFamily == AddressFamily.InterNetworkV6 && client.AddressFamily == AddressFamily.InterNetwork
                ? new IPEndPoint(client.Address.MapToIPv6(), client.Port) : client;
            _clientSocketAddress = address.Serialize();
            lock (_lock)
            {
                if (outbound4 is not null)
                {
                    _outbound4 = new TargetSide(this, outbound4);
                    _targets.Add(_outbound4);
                }
                if (outbound6 is not null)
                {
                    _outbound6 = new TargetSide(this, outbound6);
                    _targets.Add(_outbound6);
                }
            }
        }

        private static IPEndPoint Normalized(IPEndPoint endpoint) => new(OutboundAddresses.Normalize(endpoint.Address), endpoint.Port);
    }
}
