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

        _server.Counters.AddBytes(association.BytesFromClient, association.BytesToClient);
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

    /// <summary>The relay state of one association: the client-facing socket and one target-facing socket per address family.</summary>
    private sealed class UdpAssociation(SocksSession session, Socket relay, SocksEndpoint clientHint)
    {
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
            var any = new IPEndPoint(relay.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
            try
            {
                while (true)
                {
                    SocketReceiveFromResult received;
                    try
                    {
                        received = await relay.ReceiveFromAsync(buffer, SocketFlags.None, any).ConfigureAwait(false);
                    }
                    catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
                    {
                        // An ICMP error for an earlier reply to the client; keep going.
                        continue;
                    }
                    await HandleFromClientAsync(buffer, received.ReceivedBytes, (IPEndPoint)received.RemoteEndPoint).ConfigureAwait(false);
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

        private async ValueTask HandleFromClientAsync(byte[] buffer, int length, IPEndPoint source)
        {
            source = new IPEndPoint(OutboundAddresses.Normalize(source.Address), source.Port);
            if (!source.Address.Equals(_clientAddress))
            {
                Counters.UdpDrop(UdpDropReason.WrongSource);
                return;
            }
            if (_clientUdp is null)
            {
                // The request said 0: the client's port is learned from its first datagram.
                _clientUdp = source;
            }
            else if (!_clientUdp.Equals(source))
            {
                Counters.UdpDrop(UdpDropReason.WrongSource);
                return;
            }
            if (UdpHeaderCodec.TryParse(buffer.AsSpan(0, length), out var header, out var headerLength, out _) != ParseStatus.Ok)
            {
                Counters.UdpDrop(UdpDropReason.Malformed);
                return;
            }
            if (header.Fragment != 0)
            {
                // RFC 1928 section 7: fragmentation is optional; we do not reassemble.
                Counters.UdpDrop(UdpDropReason.Fragmented);
                return;
            }
            var destination = await ResolveAsync(header.Destination).ConfigureAwait(false);
            if (destination is null)
            {
                Counters.UdpDrop(UdpDropReason.ResolveFailed);
                return;
            }
            if (!IsAllowedTo(header.Destination, destination))
            {
                Counters.UdpDrop(UdpDropReason.Blocked);
                return;
            }
            try
            {
                var outbound = Outbound(destination.AddressFamily);
                await outbound.SendToAsync(buffer.AsMemory(headerLength, length - headerLength), SocketFlags.None, destination).ConfigureAwait(false);
                session.Touch();
                Interlocked.Add(ref _bytesFromClient, length - headerLength);
                Counters.UdpRelayed();
            }
            catch (SocketException)
            {
                Counters.UdpDrop(UdpDropReason.SendFailed);
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
            var any = new IPEndPoint(outbound.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
            try
            {
                while (true)
                {
                    SocketReceiveFromResult received;
                    try
                    {
                        received = await outbound.ReceiveFromAsync(buffer.AsMemory(ReplyHeadroom, DatagramBufferSize - ReplyHeadroom), SocketFlags.None, any).ConfigureAwait(false);
                    }
                    catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
                    {
                        // ICMP port unreachable from a target for an earlier datagram.
                        continue;
                    }
                    var source = (IPEndPoint)received.RemoteEndPoint;
                    source = new IPEndPoint(OutboundAddresses.Normalize(source.Address), source.Port);
                    var client = _clientUdp;
                    if (client is null)
                    {
                        Counters.UdpDrop(UdpDropReason.NoClientYet);
                        continue;
                    }
                    if (!IsAllowedFrom(source))
                    {
                        Counters.UdpDrop(UdpDropReason.Blocked);
                        continue;
                    }
                    // Encapsulate in place: the header goes into the headroom right before the payload.
                    var header = new UdpHeader(0, SocksEndpoint.FromEndPoint(source));
                    var headerLength = UdpHeaderCodec.GetLength(header.Destination);
                    var start = ReplyHeadroom - headerLength;
                    UdpHeaderCodec.Write(in header, buffer.AsSpan(start, headerLength));
                    try
                    {
                        await relay.SendToAsync(buffer.AsMemory(start, headerLength + received.ReceivedBytes), SocketFlags.None, client).ConfigureAwait(false);
                        session.Touch();
                        Interlocked.Add(ref _bytesToClient, received.ReceivedBytes);
                        Counters.UdpRelayed();
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
    }
}
