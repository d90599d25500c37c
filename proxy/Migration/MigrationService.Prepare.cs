using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace L2Balance.Proxy.Migration;

/// <summary>
/// <c>prepare</c> (docs/design.md#the-pause): the channel and the peer's capture opened before l2bal drops
/// a batch's flows, kept for the <c>move</c> that follows, so no segment of the batch falls between the drop and the capture.
/// A channel whose batch ended clean is kept for the next batch to the same peer (one connection and one capture per peer
/// and run, not per batch), until it has been idle for <see cref="PreparedLifetime"/>.
/// </summary>
internal sealed partial class MigrationService
{
    /// <summary>A prepared or kept channel not taken by a <c>move</c> or <c>prepare</c> within this closes (the peer's capture ends with it).</summary>
    private static readonly TimeSpan PreparedLifetime = TimeSpan.FromSeconds(3);

    /// <summary>One prepared or kept channel per peer; a second <c>prepare</c> to the same peer goes on it.</summary>
    private readonly Dictionary<IPEndPoint, Prepared> _prepared = [];

    /// <summary>A channel whose peer captures <see cref="Ids"/>' inbound flows, waiting for their <c>move</c>.</summary>
    private sealed class Prepared(MigrationChannel channel, HashSet<long> ids) : IDisposable
    {
        public MigrationChannel Channel => channel;

        public HashSet<long> Ids => ids;

        public void Dispose() => channel.Dispose();
    }

    /// <summary>The sessions of <paramref name="ids"/> that may move; the others are passed to <paramref name="stay"/>.</summary>
    private List<Outgoing> Candidates(IEnumerable<long> ids, byte[]? key, Action<long, MigrationRefusal, string?> stay)
    {
        var byId = _server.Sessions.ToDictionary(s => s.Id);
        var outgoing = new List<Outgoing>();
        foreach (var id in ids.Distinct())
        {
            if (key is null)
            {
                stay(id, MigrationRefusal.NoKey, null);
            }
            else if (!byId.TryGetValue(id, out var session) || session.Movable() is not { } listing)
            {
                stay(id, MigrationRefusal.NotEstablished, null);
            }
            else if (listing.Stays is { } reason)
            {
                stay(id, reason, null);
            }
            else if (session.CurrentRun is not { } run)
            {
                stay(id, MigrationRefusal.NotEstablished, null);
            }
            else
            {
                outgoing.Add(new Outgoing(id, session, run));
            }
        }
        return outgoing;
    }

    /// <summary>Opens the channel to the peer and has it capture the sessions' inbound flows; pauses nothing.</summary>
    private async Task<string> PrepareRequestAsync(MigrationControlRequest.Prepare prepare)
    {
        var answers = new Dictionary<long, string>();
        string? firstError = null;
        var refused = new SortedDictionary<string, int>(StringComparer.Ordinal);
        void Stay(long id, MigrationRefusal reason, string? error)
        {
            Counters.MigrationRefused(reason);
            answers[id] = $"stayed {id} {reason.Word()}";
            refused[reason.Word()] = refused.GetValueOrDefault(reason.Word()) + 1;
            firstError ??= error;
        }

        var key = Volatile.Read(ref _key);
        var outgoing = Candidates(prepare.Ids, key, Stay);
        if (outgoing.Count > 0)
        {
            string? failed;
            MigrationChannel? channel = null;
            // A channel kept from an earlier batch (or prepare) to this peer goes on; one that fails is replaced once by a new one.
            var kept = TakePrepared(prepare.Peer);
            HashSet<long> ids = [.. kept?.Ids ?? [], .. outgoing.Select(o => o.Id)];
            try
            {
                if (kept is not null && await PrepareAsync(kept.Channel, outgoing).ConfigureAwait(false) is null)
                {
                    channel = kept.Channel;
                    failed = null;
                }
                else
                {
                    kept?.Dispose();
                    ids = [.. outgoing.Select(o => o.Id)];
                    channel = await ConnectAsync(prepare.Peer, key!).ConfigureAwait(false);
                    failed = await PrepareAsync(channel, outgoing).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is SocketException or MigrationException or OperationCanceledException or TimeoutException)
            {
                failed = $"channel to {prepare.Peer}: {e.Message}";
            }
            if (failed is not null)
            {
                channel?.Dispose();
                outgoing.ForEach(o => Stay(o.Id, MigrationRefusal.PeerUnreachable, failed));
            }
            else
            {
                outgoing.ForEach(o => answers[o.Id] = $"prepared {o.Id}");
                KeepPrepared(prepare.Peer, new Prepared(channel!, ids));
            }
        }
        if (refused.Count > 0)
        {
            _log.MigrationsRefused(prepare.Peer.ToString(), 0, string.Join(", ", refused.Select(p => $"{p.Key} {p.Value}")), firstError);
        }
        var text = new StringBuilder();
        foreach (var id in prepare.Ids.Distinct())
        {
            text.Append(CultureInfo.InvariantCulture, $"{answers[id]}\n");
        }
        return text.Append("end\n").ToString();
    }

    /// <summary>
    /// Which of two channels to one peer stays kept: the earlier when it was prepared for a batch (<paramref name="earlierIds"/>
    /// sessions, its peer capturing their flows) and the new one is only left by a finished batch (no ids).
    /// </summary>
    internal static bool KeepsEarlier(int newIds, int earlierIds) => newIds == 0 && earlierIds > 0;

    private void KeepPrepared(IPEndPoint peer, Prepared prepared)
    {
        lock (_prepared)
        {
            if (_prepared.Remove(peer, out var earlier))
            {
                if (KeepsEarlier(prepared.Ids.Count, earlier.Ids.Count))
                {
                    _prepared[peer] = earlier;
                    prepared.Dispose();
                    return;
                }
                earlier.Dispose();
            }
            _prepared[peer] = prepared;
        }
        _ = ExpireAsync(peer, prepared);
    }

    private async Task ExpireAsync(IPEndPoint peer, Prepared prepared)
    {
        try
        {
            await Task.Delay(PreparedLifetime, _stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping: DisposePrepared closes it.
            return;
        }
        lock (_prepared)
        {
            if (!_prepared.TryGetValue(peer, out var current) || current != prepared)
            {
                return; // taken by a move, or replaced
            }
            _prepared.Remove(peer);
        }
        prepared.Dispose();
    }

    /// <summary>The channel prepared for this peer, taken (a move uses it once); null when there is none.</summary>
    private Prepared? TakePrepared(IPEndPoint peer)
    {
        lock (_prepared)
        {
            return _prepared.Remove(peer, out var prepared) ? prepared : null;
        }
    }

    /// <summary>Prepare for the sessions of a move that its prepared channel does not capture yet; null when none is left or the peer answered.</summary>
    private static Task<string?> PrepareRestAsync(MigrationChannel channel, List<Outgoing> outgoing, Prepared? prepared)
    {
        var rest = prepared is null ? outgoing : outgoing.Where(o => !prepared.Ids.Contains(o.Id)).ToList();
        return rest.Count == 0 ? Task.FromResult<string?>(null) : PrepareAsync(channel, rest);
    }

    private void DisposePrepared()
    {
        lock (_prepared)
        {
            foreach (var prepared in _prepared.Values)
            {
                prepared.Dispose();
            }
            _prepared.Clear();
        }
    }
}
