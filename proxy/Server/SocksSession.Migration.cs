using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Migration;
using L2Balance.Proxy.Relay;

namespace L2Balance.Proxy.Server;

/// <summary>What kind of relayed session may move (the <c>kind</c> of the migration control socket's <c>list</c>).</summary>
internal enum MovableKind
{
    Connect,
    Bind,
    Udp,
}

/// <summary>An established relayed session as the migration control socket lists it (docs/design.md#live-migration-design).</summary>
internal sealed record MovableSession(long Id, MovableKind Kind, IPEndPoint Client, IPEndPoint Local, IPEndPoint TargetLocal, IPEndPoint TargetRemote, long HeldBytes, MigrationRefusal? Stays);

/// <summary>
/// One run of a movable relay, between the session and the migration service: the service requests
/// the pause, the session reports where the relay stopped and waits for the decision (moved: the
/// session ends; else the relay resumes with what it held).
/// </summary>
internal sealed class RelayRun(RelayPause pause)
{
    private readonly TaskCompletionSource<RelayResult> _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<bool> _decision = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public RelayPause Pause => pause;

    /// <summary>Where the relay stopped: paused (both directions, or one that had ended), or ended without a pause.</summary>
    public Task<RelayResult> Stopped => _stopped.Task;

    /// <summary>The relay ended by itself: nothing to decide.</summary>
    public void Ended(RelayResult result) => _stopped.TrySetResult(result);

    /// <summary>The relay paused: returns the decision, true when the session moved.</summary>
    public Task<bool> StoppedAsync(RelayResult result)
    {
        _stopped.TrySetResult(result);
        return _decision.Task;
    }

    public void Decide(bool moved) => _decision.TrySetResult(moved);
}

/// <summary>The session's side of live migration (issue 19): its listing, its sockets, and the start of a session that moved in.</summary>
internal sealed partial class SocksSession
{
    private Socket? _target;
    private MovableKind _relayKind;
    private RelayRun? _run;

    /// <summary>The session's number in this process, as <c>list</c> and <c>move</c> name it.</summary>
    public long Id { get; init; }

    /// <summary>The run of the relay a move can pause now, or null (negotiating, ended, not a TCP relay, paused already).</summary>
    internal RelayRun? CurrentRun => Volatile.Read(ref _run);

    /// <summary>The client leg: client ↔ the service address.</summary>
    internal Socket ClientLeg => _client;

    /// <summary>The target leg, once relaying.</summary>
    internal Socket? TargetLeg => Volatile.Read(ref _target);

    /// <summary>The session as <c>list</c> shows it, or null when it is not an established TCP relay.</summary>
    internal MovableSession? Movable()
    {
        if (Volatile.Read(ref _association) is { } association && Volatile.Read(ref _relaying) && !Aborted)
        {
            try
            {
                return MovableUdp(association);
            }
            catch (Exception e) when (e is ObjectDisposedException or SocketException or MigrationException)
            {
                // Closed while listed: it is ending, not movable.
                return null;
            }
        }
        if (TargetLeg is not { } target || !Volatile.Read(ref _relaying) || Aborted)
        {
            return null;
        }
        try
        {
            var targetLocal = (IPEndPoint)target.LocalEndPoint!;
            var targetRemote = (IPEndPoint)target.RemoteEndPoint!;
            var held = TcpRepair.QueuedBytes(_client) + TcpRepair.QueuedBytes(target);
            MigrationRefusal? stays = Protected ? MigrationRefusal.GssapiProtected
                : !OutboundAddresses.Normalize(targetLocal.Address).Equals(Local.Address) ? MigrationRefusal.NotSingleIp
                : CurrentRun is null ? MigrationRefusal.NotEstablished
                : null;
            return new MovableSession(Id, _relayKind, Client, Local,
                new IPEndPoint(OutboundAddresses.Normalize(targetLocal.Address), targetLocal.Port),
                new IPEndPoint(OutboundAddresses.Normalize(targetRemote.Address), targetRemote.Port), held, stays);
        }
        catch (Exception e) when (e is ObjectDisposedException or SocketException or MigrationException)
        {
            // Closed or reset while listed: it is ending, not movable.
            return null;
        }
    }

    /// <summary>
    /// Runs a session restored from another node: both legs live already, the relay starts with the
    /// bytes the old node's relay held (<paramref name="resume"/>), and it may move again.
    /// </summary>
    internal async Task RunMovedInAsync(Socket target, IPEndPoint targetRemote, RelayResult resume)
    {
        var outcome = SessionOutcome.InternalError;
        try
        {
            Own(target);
            EnterRelay();
            _handshake.Dispose();
            outcome = await RelayMovableAsync(target, _clientRuleLog, "tcp/moved-in", targetRemote, 0, resume).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            if (!Aborted)
            {
                Log.Unexpected($"session {Client} (moved in)", e);
            }
        }
        finally
        {
            if (Aborted)
            {
                outcome = (SessionOutcome)Volatile.Read(ref _abortReason);
            }
            CloseAll();
            _server.SessionFinished(this, outcome);
        }
    }
}
