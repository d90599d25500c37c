using System.Buffers;
using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Server;

/// <summary>
/// UDP ASSOCIATE (RFC 1928 section 7). The client-facing relay socket is bound on the address
/// the control connection arrived on (in a cluster, the VIP), in the configured port range, so a
/// client's UDP lands on the node that holds its TCP control connection. Datagrams are accepted
/// only from the client's address; the association ends with the control connection.
/// </summary>
internal sealed partial class SocksSession
{
    /// <summary>Room kept in front of a reply for its SOCKS UDP header: 4 + 16 (IPv6) + 2 bytes.</summary>
    private const int ReplyHeadroom = 22;

    /// <summary>Largest UDP payload plus headroom.</summary>
    private const int DatagramBufferSize = 65536 + ReplyHeadroom;

    /// <summary>Bound on the per-association caches of rule verdicts and resolved names.</summary>
    private const int CacheLimit = 1024;

    private async Task<SessionOutcome> UdpAssociateAsync(SocksEndpoint clientHint)
    {
        var what = CommandName(RuleCommand.UdpAssociate);
        if (!_server.TryReserveUdpAssociation())
        {
            await TrySendReplyAsync(ReplyCode.GeneralFailure, null).ConfigureAwait(false);
            Log.SessionFailed(_clientRuleLog | RuleLog.Error, what, Client, clientHint.ToString(), SessionOutcome.LimitReached,
                $"maximum of {Options.MaxUdpAssociations} UDP associations reached");
            return SessionOutcome.LimitReached;
        }
        _server.Counters.UdpAssociationStarted();
        try
        {
            return await RunUdpAssociationAsync(clientHint, what).ConfigureAwait(false);
        }
        finally
        {
            _server.Counters.UdpAssociationEnded();
            _server.ReleaseUdpAssociation();
        }
    }

    private async Task<SessionOutcome> RunUdpAssociationAsync(SocksEndpoint clientHint, string what)
    {
        var relay = Own(new Socket(Local.AddressFamily, SocketType.Dgram, ProtocolType.Udp));
        try
        {
            PortBinder.Bind(relay, Local.Address, Options.PortRange);
        }
        catch (SocketException e)
        {
            await TrySendReplyAsync(ReplyCode.GeneralFailure, null).ConfigureAwait(false);
            Log.SessionFailed(_clientRuleLog | RuleLog.Error, what, Client, clientHint.ToString(), SessionOutcome.UdpSetupFailed, $"bind relay on {Local.Address}: {e.SocketErrorCode}");
            return SessionOutcome.UdpSetupFailed;
        }
        var relayEndPoint = (IPEndPoint)relay.LocalEndPoint!;
        var association = new UdpAssociation(this, relay, clientHint);
        await SendReplyAsync(ReplyCode.Succeeded, relayEndPoint).ConfigureAwait(false);
        _server.Counters.HandshakeCompleted(Elapsed);
        Log.UdpAssociated(Client, relayEndPoint);
        var passLog = new RuleVerdict(RuleAction.Pass, _clientRuleLog, null, null);
        Log.RequestPassed(in passLog, what, Client, $"-> {Local} => relay {relayEndPoint}");
        EnterRelay();

        var fromClient = association.ClientLoopAsync();
        await WaitForControlCloseAsync().ConfigureAwait(false);
        association.Close();
        await fromClient.ConfigureAwait(false);
        await association.WhenTargetLoopsDone().ConfigureAwait(false);

        var how = Aborted ? ((SessionOutcome)Volatile.Read(ref _abortReason)).ToString() : "control connection closed";
        Log.SessionEnded(_clientRuleLog, what, Client, $"relay {relayEndPoint}", association.BytesFromClient, association.BytesToClient, Elapsed, how);
        return SessionOutcome.Completed;
    }

    /// <summary>Waits until the TCP control connection closes; bytes the client sends on it are discarded.</summary>
    private async Task WaitForControlCloseAsync()
    {
        var scratch = new byte[64];
        try
        {
            while (await _client.ReceiveAsync(scratch, SocketFlags.None).ConfigureAwait(false) > 0)
            {
                Touch();
            }
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// The relay state of one association: the client-facing socket and one target-facing socket per
    /// address family. The per-datagram path allocates nothing: addresses are received into and sent
    /// from <see cref="SocketAddress"/> buffers, and each loop remembers its last peer (the client's
    /// last destination header, a target's source address with its encoded reply header), so a
    /// datagram to or from the same peer as the one before skips parsing, resolving and the rules.
    /// </summary>
    private sealed class UdpAssociation(SocksSession session, Socket relay, SocksEndpoint clientHint)
    {
        /// <summary>Longest SOCKS UDP header: RSV RSV FRAG ATYP, a 255-byte name with its length byte, port.</summary>
        private const int MaxHeaderLength = 4 + 1 + 255 + 2;

        private readonly Dictionary<(string Host, ushort Port), IPEndPoint?> _resolved = [];
        private readonly Dictionary<IPEndPoint, bool> _allowedTo = [];
        private readonly Dictionary<IPEndPoint, bool> _allowedFrom = [];
        private readonly List<Task> _targetLoops = [];
        private readonly IPAddress _clientAddress = session.Client.Address;
        private Socket? _outbound4;
        private Socket? _outbound6;
        private IPEndPoint? _clientUdp = clientHint.Port != 0 && clientHint.Address is { } a && !a.Equals(IPAddress.Any) && !a.Equals(IPAddress.IPv6Any)
            ? new IPEndPoint(OutboundAddresses.Normalize(a), clientHint.Port)
            : null;

        /// <summary><see cref="_clientUdp"/> as the relay socket's address, once known; read by the target loops.</summary>
        private volatile SocketAddress? _clientSocketAddress;
        private long _bytesFromClient;
        private long _bytesToClient;

        public long BytesFromClient => Interlocked.Read(ref _bytesFromClient);

        public long BytesToClient => Interlocked.Read(ref _bytesToClient);

        private ProxyCounters Counters => session._server.Counters;

        public void Close()
        {
            relay.Dispose();
            _outbound4?.Dispose();
            _outbound6?.Dispose();
        }

        public Task WhenTargetLoopsDone()
        {
            lock (_targetLoops)
            {
                return Task.WhenAll(_targetLoops);
            }
        }

        public async Task ClientLoopAsync()
        {
            var buffer = ArrayPool<byte>.Shared.Rent(DatagramBufferSize);
            var from = new SocketAddress(relay.AddressFamily);
            // The last destination: its header bytes as the client sent them, where they go, and the socket.
            var lastHeader = new byte[MaxHeaderLength];
            var lastHeaderLength = 0;
            SocketAddress? lastDestination = null;
            Socket? lastOutbound = null;
            try
            {
                while (true)
                {
                    int length;
                    try
                    {
                        length = await relay.ReceiveFromAsync(buffer, SocketFlags.None, from).ConfigureAwait(false);
                    }
                    catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
                    {
                        // An ICMP error for an earlier reply to the client; keep going.
                        continue;
                    }
                    if (!from.Equals(_clientSocketAddress) && !AcceptClientSource(from))
                    {
                        Counters.UdpDrop(UdpDropReason.WrongSource);
                        continue;
                    }
                    if (lastDestination is null || length < lastHeaderLength
                        || !buffer.AsSpan(0, lastHeaderLength).SequenceEqual(lastHeader.AsSpan(0, lastHeaderLength)))
                    {
                        var route = await RouteFromClientAsync(buffer, length).ConfigureAwait(false);
                        if (route is not { } r)
                        {
                            continue;
                        }
                        buffer.AsSpan(0, r.HeaderLength).CopyTo(lastHeader);
                        (lastHeaderLength, lastDestination, lastOutbound) = (r.HeaderLength, r.Destination, r.Outbound);
                    }
                    try
                    {
                        await lastOutbound!.SendToAsync(buffer.AsMemory(lastHeaderLength, length - lastHeaderLength), SocketFlags.None, lastDestination).ConfigureAwait(false);
                        session.Touch();
                        Interlocked.Add(ref _bytesFromClient, length - lastHeaderLength);
                        Counters.UdpRelayed(fromClient: length - lastHeaderLength, toClient: 0);
                    }
                    catch (SocketException e) when (e.SocketErrorCode != SocketError.OperationAborted)
                    {
                        Counters.UdpDrop(UdpDropReason.SendFailed);
                    }
                }
            }
            catch (SocketException)
            {
            }
            catch (ObjectDisposedException)
            {
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
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
        /// resolves, checks the rules. Null when it is dropped (counted).
        /// </summary>
        private async ValueTask<(int HeaderLength, SocketAddress Destination, Socket Outbound)?> RouteFromClientAsync(byte[] buffer, int length)
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
            var destination = await ResolveAsync(header.Destination).ConfigureAwait(false);
            if (destination is null)
            {
                Counters.UdpDrop(UdpDropReason.ResolveFailed);
                return null;
            }
            if (!IsAllowedTo(header.Destination, destination))
            {
                Counters.UdpDrop(UdpDropReason.Blocked);
                return null;
            }
            try
            {
                return (headerLength, destination.Serialize(), Outbound(destination.AddressFamily));
            }
            catch (SocketException)
            {
                Counters.UdpDrop(UdpDropReason.SendFailed);
                return null;
            }
        }

        private async ValueTask<IPEndPoint?> ResolveAsync(SocksEndpoint destination)
        {
            if (destination.Address is { } address)
            {
                return new IPEndPoint(address, destination.Port);
            }
            var key = (destination.Host!, destination.Port);
            if (_resolved.TryGetValue(key, out var cached))
            {
                return cached;
            }
            var addresses = await session.ResolveAsync(destination).ConfigureAwait(false);
            var endPoint = addresses.Length == 0 ? null : new IPEndPoint(addresses[0], destination.Port);
            if (_resolved.Count >= CacheLimit)
            {
                _resolved.Clear();
            }
            _resolved[key] = endPoint;
            return endPoint;
        }

        private bool IsAllowedTo(SocksEndpoint requested, IPEndPoint destination)
        {
            if (!_allowedTo.TryGetValue(destination, out var allowed))
            {
                allowed = session.Check(RuleCommand.UdpAssociate, session.Client, requested, destination.Address, RuleProtocol.Udp).Passed;
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
            lock (_allowedFrom)
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
        }

        private Socket Outbound(AddressFamily family)
        {
            ref var slot = ref family == AddressFamily.InterNetwork ? ref _outbound4 : ref _outbound6;
            if (slot is null)
            {
                var socket = session.Own(new Socket(family, SocketType.Dgram, ProtocolType.Udp));
                var source = session._server.Outbound.For(family, session.Local.Address)
                    ?? (family == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any);
                socket.Bind(new IPEndPoint(source, 0));
                slot = socket;
                lock (_targetLoops)
                {
                    _targetLoops.Add(TargetLoopAsync(socket));
                }
            }
            return slot;
        }

        private async Task TargetLoopAsync(Socket outbound)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(DatagramBufferSize);
            var from = new SocketAddress(outbound.AddressFamily);
            // The last target this loop heard from, and the SOCKS header that announces it to the client.
            SocketAddress? lastSource = null;
            var lastAllowed = false;
            var lastHeader = new byte[ReplyHeadroom];
            var lastHeaderLength = 0;
            try
            {
                while (true)
                {
                    int length;
                    try
                    {
                        length = await outbound.ReceiveFromAsync(buffer.AsMemory(ReplyHeadroom, DatagramBufferSize - ReplyHeadroom), SocketFlags.None, from).ConfigureAwait(false);
                    }
                    catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
                    {
                        // ICMP port unreachable from a target for an earlier datagram.
                        continue;
                    }
                    var client = _clientSocketAddress;
                    if (client is null)
                    {
                        Counters.UdpDrop(UdpDropReason.NoClientYet);
                        continue;
                    }
                    if (!from.Equals(lastSource))
                    {
                        var source = ToEndPoint(from);
                        source = new IPEndPoint(OutboundAddresses.Normalize(source.Address), source.Port);
                        lastAllowed = IsAllowedFrom(source);
                        var header = new UdpHeader(0, SocksEndpoint.FromEndPoint(source));
                        lastHeaderLength = UdpHeaderCodec.Write(in header, lastHeader);
                        lastSource = Copy(from);
                    }
                    if (!lastAllowed)
                    {
                        Counters.UdpDrop(UdpDropReason.Blocked);
                        continue;
                    }
                    // Encapsulate in place: the header goes into the headroom right before the payload.
                    var start = ReplyHeadroom - lastHeaderLength;
                    lastHeader.AsSpan(0, lastHeaderLength).CopyTo(buffer.AsSpan(start));
                    try
                    {
                        await relay.SendToAsync(buffer.AsMemory(start, lastHeaderLength + length), SocketFlags.None, client).ConfigureAwait(false);
                        session.Touch();
                        Interlocked.Add(ref _bytesToClient, length);
                        Counters.UdpRelayed(fromClient: 0, toClient: length);
                    }
                    catch (SocketException e) when (e.SocketErrorCode != SocketError.OperationAborted)
                    {
                        Counters.UdpDrop(UdpDropReason.SendFailed);
                    }
                }
            }
            catch (SocketException)
            {
            }
            catch (ObjectDisposedException)
            {
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
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
