using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Relay;
using L2Balance.Proxy.Rules;
using Epoll = L2Balance.Proxy.Interop.Interop.Epoll;

namespace L2Balance.Proxy.Server;

/// <summary>The relay of one UDP association (UDP ASSOCIATE: SocksSession.Udp.cs).</summary>
internal sealed partial class SocksSession
{
    /// <summary>
    /// The relay state of one association: the client-facing socket and one target-facing socket per
    /// address family, all relayed by the <see cref="UdpPoller"/>'s thread with non-blocking receives
    /// and sends. The per-datagram path allocates nothing: addresses are received into and sent from
    /// <see cref="SocketAddress"/> buffers, and each direction remembers its last peer (the client's
    /// last destination header, a target's source address with its encoded reply header), so a
    /// datagram to or from the same peer as the one before skips parsing, resolving and the rules.
    /// A name not yet resolved sends its datagram from a task once resolved.
    /// </summary>
    private sealed partial class UdpAssociation(SocksSession session, Socket relay, SocksEndpoint clientHint) : IUdpReadable
    {
        /// <summary>Longest SOCKS UDP header: RSV RSV FRAG ATYP, a 255-byte name with its length byte, port.</summary>
        private const int MaxHeaderLength = 4 + 1 + 255 + 2;

        /// <summary>Datagrams taken from one socket per wake-up before the poller serves the others (it wakes again: level-triggered).</summary>
        private const int Budget = 64;

        private readonly Lock _lock = new();
        private readonly Dictionary<(string Host, ushort Port), IPEndPoint?> _resolved = [];
        private readonly Dictionary<IPEndPoint, RuleVerdict> _allowedTo = [];
        private readonly Dictionary<IPEndPoint, bool> _allowedFrom = [];
        private readonly List<TargetSide> _targets = [];
        /// <summary>The lookups pending (each removes itself when done), at most the server's <see cref="UdpLookupLimiter.PerAssociation"/>.</summary>
        private readonly HashSet<Task> _resolving = [];
        private readonly IPAddress _clientAddress = session.Client.Address;
        private readonly SocketAddress _from = new(relay.AddressFamily);
        private readonly byte[] _lastHeader = new byte[MaxHeaderLength];
        private TargetSide? _outbound4;
        private TargetSide? _outbound6;
        private ulong _relayKey;
        private bool _closed;
        /// <summary>Stopped for a move (under <see cref="_lock"/>): no target-facing socket is made meanwhile.</summary>
        private bool _paused;
        /// <summary>1 while paused: a poller callback that starts after <see cref="Pause"/> returns at once (see <see cref="EnterPoller"/>).</summary>
        private int _pausing;
        /// <summary>Poller callbacks of this association running now.</summary>
        private int _inPoller;
        private IPEndPoint? _clientUdp = clientHint.Port != 0 && clientHint.Address is { } a && !a.Equals(IPAddress.Any) && !a.Equals(IPAddress.IPv6Any)
            ? new IPEndPoint(OutboundAddresses.Normalize(a), clientHint.Port)
            : null;

        // The client's last destination (poller thread only): its header bytes as the client sent them, where they go, and the socket.
        private int _lastHeaderLength;
        private SocketAddress? _lastDestination;
        private TargetSide? _lastOutbound;

        /// <summary><see cref="_clientUdp"/> as the relay socket's address, once known; read by the target sides.</summary>
        private volatile SocketAddress? _clientSocketAddress;
        private long _bytesFromClient;
        private long _bytesToClient;

        public long BytesFromClient => Interlocked.Read(ref _bytesFromClient);

        public long BytesToClient => Interlocked.Read(ref _bytesToClient);

        private ProxyCounters Counters => session._server.Counters;

        private Socket Relay => relay;

        private SocksSession Session => session;

        /// <summary>Starts relaying: the client-facing socket joins the poller, and the target-facing ones of a moved-in association.</summary>
        public void Start()
        {
            // Target-facing sockets first: once the relay is registered, the poller may take a client's
            // datagram and make (and register) a target socket itself, which this loop must not meet again.
            lock (_lock)
            {
                foreach (var target in _targets)
                {
                    target.Key = UdpPoller.Shared.Register(target.Socket, target);
                }
            }
            _relayKey = UdpPoller.Shared.Register(relay, this);
        }

        /// <summary>Stops relaying and closes the sockets; then <see cref="WhenResolvesDone"/> awaits datagrams still resolving.</summary>
        public void Close()
        {
            TargetSide[] targets;
            lock (_lock)
            {
                _closed = true;
                targets = [.. _targets];
            }
            UdpPoller.Shared.Unregister(relay, _relayKey);
            relay.Dispose();
            foreach (var target in targets)
            {
                UdpPoller.Shared.Unregister(target.Socket, target.Key);
                target.Socket.Dispose();
            }
        }

        public Task WhenResolvesDone()
        {
            lock (_lock)
            {
                return Task.WhenAll(_resolving);
            }
        }

        /// <summary>
        /// The poller dropped one of this association's sockets because handling it threw: count, log (throttled)
        /// and end the session, whose sockets then close; the poller goes on with every other association.
        /// </summary>
        public void OnFailed(Exception exception)
        {
            Counters.LoopError(ProxyLoop.UdpPoller);
            session.Log.LoopFailed(ProxyLoop.UdpPoller, $"udp association of {session.Client}", exception.ToString(), TimeSpan.Zero);
            session.Abort(SessionOutcome.InternalError);
        }

        /// <summary>Datagrams from the client (poller thread).</summary>
        public void OnReadable(byte[] buffer)
        {
            if (!EnterPoller())
            {
                return;
            }
            try
            {
                ReceiveFromClient(buffer);
            }
            finally
            {
                Interlocked.Decrement(ref _inPoller);
            }
        }

        /// <summary>A poller callback may run: false once <see cref="Pause"/> began (an event taken before the unregistering).</summary>
        private bool EnterPoller()
        {
            // Both sides use full fences (Interlocked): Pause sets _pausing then reads _inPoller, a callback the reverse.
            Interlocked.Increment(ref _inPoller);
            if (Volatile.Read(ref _pausing) == 0)
            {
                return true;
            }
            Interlocked.Decrement(ref _inPoller);
            return false;
        }

        private void ReceiveFromClient(byte[] buffer)
        {
            for (int budget = Budget; budget > 0; budget--)
            {
                var received = Epoll.ReceiveFrom(relay.SafeHandle, buffer, _from);
                if (received < 0)
                {
                    if (received == -Epoll.ECONNREFUSED)
                    {
                        // An ICMP error for an earlier reply to the client; keep going.
                        continue;
                    }
                    return;
                }
                var length = (int)received;
                if (!_from.Equals(_clientSocketAddress) && !AcceptClientSource(_from))
                {
                    Counters.UdpDrop(UdpDropReason.WrongSource);
                    continue;
                }
                if (session.Protected && (length = session.UnwrapDatagram(buffer, length)) < 0)
                {
                    Counters.UdpDrop(UdpDropReason.GssapiToken);
                    continue;
                }
                if (_lastDestination is null || length < _lastHeaderLength
                    || !buffer.AsSpan(0, _lastHeaderLength).SequenceEqual(_lastHeader.AsSpan(0, _lastHeaderLength)))
                {
                    if (Route(buffer, length) is not { } r)
                    {
                        continue;
                    }
                    buffer.AsSpan(0, r.HeaderLength).CopyTo(_lastHeader);
                    (_lastHeaderLength, _lastDestination, _lastOutbound) = (r.HeaderLength, r.Destination, r.Outbound);
                }
                SendToTarget(_lastOutbound!, buffer.AsSpan(_lastHeaderLength, length - _lastHeaderLength), _lastDestination);
            }
        }

        private void SendToTarget(TargetSide outbound, ReadOnlySpan<byte> payload, SocketAddress destination)
        {
            if (Epoll.SendTo(outbound.Socket.SafeHandle, payload, destination) < 0)
            {
                Counters.UdpDrop(UdpDropReason.SendFailed);
                return;
            }
            session.Touch();
            Interlocked.Add(ref _bytesFromClient, payload.Length);
            Counters.UdpRelayed(fromClient: payload.Length, toClient: 0);
        }

        /// <summary>
        /// The slow path of a datagram whose source is not the known client address: accepts it
        /// (and learns the client's port) if it comes from the client's host and port.
        /// </summary>
        private bool AcceptClientSource(SocketAddress from)
        {
            var source = ToEndPoint(from);
            source = new IPEndPoint(OutboundAddresses.Normalize(source.Address), source.Port);
            if (!source.Address.Equals(_clientAddress))
            {
                return false;
            }
            if (_clientUdp is null)
            {
                // The request said 0: the client's port is learned from its first datagram.
                _clientUdp = source;
            }
            else if (!_clientUdp.Equals(source))
            {
                return false;
            }
            _clientSocketAddress = Copy(from);
            return true;
        }

        /// <summary>
        /// The slow path of a datagram to a destination other than the last one: parses its header,
        /// checks the rules. Null when it is dropped (counted) or waits for its name to resolve (a
        /// copy goes to <see cref="ResolveThenSendAsync"/>).
        /// </summary>
        private (int HeaderLength, SocketAddress Destination, TargetSide Outbound)? Route(byte[] buffer, int length)
        {
            if (UdpHeaderCodec.TryParse(buffer.AsSpan(0, length), out var header, out var headerLength, out _) != ParseStatus.Ok)
            {
                Counters.UdpDrop(UdpDropReason.Malformed);
                return null;
            }
            if (header.Fragment != 0)
            {
                // RFC 1928 section 7: fragmentation is optional; we do not reassemble.
                Counters.UdpDrop(UdpDropReason.Fragmented);
                return null;
            }
            lock (_lock)
            {
                IPEndPoint? destination;
                if (header.Destination.Address is { } address)
                {
                    destination = new IPEndPoint(address, header.Destination.Port);
                }
                else if (!_resolved.TryGetValue((header.Destination.Host!, header.Destination.Port), out destination))
                {
                    if (!_closed)
                    {
                        StartLookup(buffer.AsSpan(0, length), header.Destination);
                    }
                    return null;
                }
                if (destination is null)
                {
                    Counters.UdpDrop(UdpDropReason.ResolveFailed);
                    return null;
                }
                if (AllowedTo(header.Destination, destination) is { Passed: false } refused)
                {
                    // A protected destination (docs/sockd-conf.md#protected-destinations) is counted per datagram.
                    Counters.UdpDrop(refused.Protected == DestinationClass.Ordinary ? UdpDropReason.Blocked : UdpDropReason.ProtectedDestination);
                    session.CountRefusal(in refused);
                    return null;
                }
                try
                {
                    return Outbound(destination.AddressFamily) is { } outbound ? (headerLength, destination.Serialize(), outbound) : null;
                }
                catch (Exception e) when (e is SocketException or IOException)
                {
                    Counters.UdpDrop(UdpDropReason.SendFailed);
                    return null;
                }
            }
        }

        /// <summary>
        /// Starts the lookup a datagram waits for, with a copy of it, if the caps on pending lookups allow
        /// (<see cref="UdpLookupLimiter"/>); otherwise drops it, counted (under <see cref="_lock"/>).
        /// </summary>
        private void StartLookup(ReadOnlySpan<byte> datagram, SocksEndpoint destination)
        {
            var lookups = session._server.UdpLookups;
            if (lookups.TryEnter(_resolving.Count) is { } limit)
            {
                Counters.UdpLookupRefused(limit);
                Counters.UdpDrop(UdpDropReason.LookupLimit);
                session.Log.UdpLookupsLimited(session.Client, limit, limit == WorkLimit.PerClient ? UdpLookupLimiter.PerAssociation : UdpLookupLimiter.Total);
                return;
            }
            var lookup = ResolveThenSendAsync(datagram.ToArray(), destination);
            _resolving.Add(lookup);
            _ = lookup.ContinueWith(
                static (done, state) =>
                {
                    var association = (UdpAssociation)state!;
                    lock (association._lock)
                    {
                        association._resolving.Remove(done);
                    }
                    association.Session._server.UdpLookups.Exit();
                },
                this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        /// <summary>Resolves a datagram's destination name, caches the answer, then routes and sends the datagram.</summary>
        private async Task ResolveThenSendAsync(byte[] datagram, SocksEndpoint destination)
        {
            var addresses = await session.ResolveAsync(destination).ConfigureAwait(false);
            lock (_lock)
            {
                if (_resolved.Count >= CacheLimit)
                {
                    _resolved.Clear();
                }
                _resolved[(destination.Host!, destination.Port)] = addresses.Length == 0 ? null : new IPEndPoint(addresses[0], destination.Port);
            }
            try
            {
                if (Route(datagram, datagram.Length) is { } r)
                {
                    SendToTarget(r.Outbound, datagram.AsSpan(r.HeaderLength), r.Destination);
                }
            }
            catch (ObjectDisposedException)
            {
                // The association closed (or the session was aborted) meanwhile.
            }
        }

        private RuleVerdict AllowedTo(SocksEndpoint requested, IPEndPoint destination)
        {
            if (!_allowedTo.TryGetValue(destination, out var allowed))
            {
                allowed = session.Check(RuleCommand.UdpAssociate, session.Client, requested, destination.Address, RuleProtocol.Udp);
                if (_allowedTo.Count >= CacheLimit)
                {
                    _allowedTo.Clear();
                }
                _allowedTo[destination] = allowed;
            }
            return allowed;
        }

        private bool IsAllowedFrom(IPEndPoint source)
        {
            if (!_allowedFrom.TryGetValue(source, out var allowed))
            {
                allowed = session.Check(RuleCommand.UdpReply, source, SocksEndpoint.FromEndPoint(session.Client), session.Client.Address, RuleProtocol.Udp).Passed;
                if (_allowedFrom.Count >= CacheLimit)
                {
                    _allowedFrom.Clear();
                }
                _allowedFrom[source] = allowed;
            }
            return allowed;
        }

        /// <summary>The target-facing socket of a family, made and registered with the poller on first use (under <see cref="_lock"/>); null once closed.</summary>
        private TargetSide? Outbound(AddressFamily family)
        {
            ref var slot = ref family == AddressFamily.InterNetwork ? ref _outbound4 : ref _outbound6;
            if (slot is null && !_closed && !_paused)
            {
                var socket = session.Own(new Socket(family, SocketType.Dgram, ProtocolType.Udp));
                var source = session._server.Outbound.For(family, session.Local.Address)
                    ?? (family == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any);
                // Single-IP mode: replies come back to the shared VIP, accepted by this node's slice.
                var range = session._server.Outbound.IsShared(source, session.Local.Address) ? session.Options.PortRange : null;
                try
                {
                    PortBinder.Bind(socket, source, range);
                }
                catch (SocketException e) when (range is not null && PortBinder.IsExhausted(e.SocketErrorCode))
                {
                    session._server.Counters.PortRangeExhaustedBy(PortRangeUse.UdpOutbound);
                    session.Log.PortRangeExhausted(PortRangeUse.UdpOutbound, range.Value.ToString(), session.Client, "udp");
                    throw;
                }
                if (range is not null)
                {
                    session.HoldRangePort();
                }
                var side = new TargetSide(this, socket);
                side.Key = UdpPoller.Shared.Register(socket, side);
                _targets.Add(side);
                slot = side;
            }
            return slot;
        }

        /// <summary>One target-facing socket: replies from targets, wrapped in a SOCKS header, go to the client (poller thread).</summary>
        private sealed class TargetSide(UdpAssociation association, Socket socket) : IUdpReadable
        {
            private readonly SocketAddress _from = new(socket.AddressFamily);
            private readonly byte[] _lastHeader = new byte[ReplyHeadroom];

            // The last target this side heard from, and the SOCKS header that announces it to the client.
            private SocketAddress? _lastSource;
            private bool _lastAllowed;
            private int _lastHeaderLength;

            public Socket Socket => socket;

            /// <summary>The poller registration, for unregistering.</summary>
            public ulong Key { get; set; }

            public void OnFailed(Exception exception) => association.OnFailed(exception);

            public void OnReadable(byte[] buffer)
            {
                if (!association.EnterPoller())
                {
                    return;
                }
                try
                {
                    ReceiveFromTargets(buffer);
                }
                finally
                {
                    Interlocked.Decrement(ref association._inPoller);
                }
            }

            public void ReceiveFromTargets(byte[] buffer)
            {
                var counters = association.Counters;
                for (int budget = Budget; budget > 0; budget--)
                {
                    var received = Epoll.ReceiveFrom(socket.SafeHandle, buffer.AsSpan(ReplyHeadroom), _from);
                    if (received < 0)
                    {
                        if (received == -Epoll.ECONNREFUSED)
                        {
                            // ICMP port unreachable from a target for an earlier datagram.
                            continue;
                        }
                        return;
                    }
                    var length = (int)received;
                    var client = association._clientSocketAddress;
                    if (client is null)
                    {
                        counters.UdpDrop(UdpDropReason.NoClientYet);
                        continue;
                    }
                    if (!_from.Equals(_lastSource))
                    {
                        var source = ToEndPoint(_from);
                        source = new IPEndPoint(OutboundAddresses.Normalize(source.Address), source.Port);
                        lock (association._lock)
                        {
                            _lastAllowed = association.IsAllowedFrom(source);
                        }
                        var header = new UdpHeader(0, SocksEndpoint.FromEndPoint(source));
                        _lastHeaderLength = UdpHeaderCodec.Write(in header, _lastHeader);
                        _lastSource = Copy(_from);
                    }
                    if (!_lastAllowed)
                    {
                        counters.UdpDrop(UdpDropReason.Blocked);
                        continue;
                    }
                    // Encapsulate in place: the header goes into the headroom right before the payload.
                    var start = ReplyHeadroom - _lastHeaderLength;
                    _lastHeader.AsSpan(0, _lastHeaderLength).CopyTo(buffer.AsSpan(start));
                    ReadOnlySpan<byte> datagram = buffer.AsSpan(start, _lastHeaderLength + length);
                    if (association.Session.Protected)
                    {
                        if (association.Session.WrapDatagram(datagram) is not { } message)
                        {
                            counters.UdpDrop(UdpDropReason.GssapiToken);
                            continue;
                        }
                        datagram = message;
                    }
                    if (Epoll.SendTo(association.Relay.SafeHandle, datagram, client) < 0)
                    {
                        counters.UdpDrop(UdpDropReason.SendFailed);
                        continue;
                    }
                    association.Session.Touch();
                    Interlocked.Add(ref association._bytesToClient, length);
                    counters.UdpRelayed(fromClient: 0, toClient: length);
                }
            }
        }

        /// <summary>An address received into a <see cref="SocketAddress"/> as an <see cref="IPEndPoint"/> (slow paths only: it allocates).</summary>
        private static IPEndPoint ToEndPoint(SocketAddress address) => (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(address);

        /// <summary>A copy of a receive buffer's address, to keep while the buffer receives the next.</summary>
        private static SocketAddress Copy(SocketAddress address)
        {
            var copy = new SocketAddress(address.Family, address.Size);
            address.Buffer.Span[..address.Size].CopyTo(copy.Buffer.Span);
            return copy;
        }
    }
}
