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
        catch (SocketException e) when (Options.PortRange is not null && PortBinder.IsExhausted(e.SocketErrorCode))
        {
            return await RangeExhaustedAsync(PortRangeUse.UdpRelay, _clientRuleLog | RuleLog.Error, what, clientHint.ToString(), SessionOutcome.UdpSetupFailed).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            await TrySendReplyAsync(ReplyCode.GeneralFailure, null).ConfigureAwait(false);
            Log.SessionFailed(_clientRuleLog | RuleLog.Error, what, Client, clientHint.ToString(), SessionOutcome.UdpSetupFailed, $"bind relay on {Local.Address}: {e.SocketErrorCode}");
            return SessionOutcome.UdpSetupFailed;
        }
        if (Options.PortRange is not null)
        {
            HoldRangePort();
        }
        var relayEndPoint = (IPEndPoint)relay.LocalEndPoint!;
        var association = new UdpAssociation(this, relay, clientHint);
        await SendReplyAsync(ReplyCode.Succeeded, relayEndPoint).ConfigureAwait(false);
        _server.Counters.HandshakeCompleted(Elapsed);
        Log.UdpAssociated(Client, relayEndPoint);
        var passLog = new RuleVerdict(RuleAction.Pass, _clientRuleLog, null, null);
        Log.RequestPassed(in passLog, what, Client, $"-> {Local} => relay {relayEndPoint}");
        EnterRelay();

        return await RunAssociationAsync(association, what, $"relay {relayEndPoint}").ConfigureAwait(false);
    }

    /// <summary>Relays until the control connection closes or the association moves (issue 19), then closes it and logs its end.</summary>
    private async Task<SessionOutcome> RunAssociationAsync(UdpAssociation association, string what, string relay)
    {
        association.Start();
        var moved = await RelayAssociationMovableAsync(association).ConfigureAwait(false);
        association.Close();
        await association.WhenResolvesDone().ConfigureAwait(false);

        var how = moved ? "moved to another node" : Aborted ? ((SessionOutcome)Volatile.Read(ref _abortReason)).ToString() : "control connection closed";
        Log.SessionEnded(_clientRuleLog, what, Client, relay, association.BytesFromClient, association.BytesToClient, Elapsed, how);
        return moved ? SessionOutcome.Migrated : SessionOutcome.Completed;
    }

    /// <summary>
    /// Waits until the TCP control connection closes; bytes the client sends on it are discarded.
    /// True when <paramref name="pause"/> stopped the wait (a move; the connection is still open).
    /// </summary>
    private async Task<bool> WaitForControlCloseAsync(CancellationToken pause)
    {
        var scratch = new byte[64];
        try
        {
            while (await _client.ReceiveAsync(scratch, SocketFlags.None, pause).ConfigureAwait(false) > 0)
            {
                Touch();
            }
        }
        catch (OperationCanceledException) when (pause.IsCancellationRequested)
        {
            return true;
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        return false;
    }
}
