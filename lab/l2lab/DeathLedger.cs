using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli;

/// <summary>
/// Every "peer declared dead" verdict of every l2bal a bench run started, from their status
/// (the <c>peer-dead</c> counter and events, docs/status-json.md). A daemon's counters end with
/// it, so a daemon about to be stopped or killed is read first (<see cref="SettleAsync"/>).
/// Peers that announced they leave (the bench's own restarts) are <c>peer-left</c>, not counted.
/// </summary>
internal sealed class DeathLedger
{
    private readonly List<string> _verdicts = [];
    private long _deaths;

    /// <summary>Verdicts so far (as far as the daemons still kept the events), each "node K: event".</summary>
    public IReadOnlyList<string> Verdicts => _verdicts;

    /// <summary>Deaths declared so far by the daemons already settled.</summary>
    public long Deaths => _deaths;

    /// <summary>Reads the daemons of <paramref name="nodes"/> before they end and adds what they declared.</summary>
    public async Task SettleAsync(ClusterLab lab, IEnumerable<int> nodes, CancellationToken ct)
    {
        foreach (var k in nodes)
        {
            if (await ClusterOps.StatusAsync(lab, k, ct).ConfigureAwait(false) is not { } status)
            {
                _verdicts.Add($"node {k}: its l2bal did not answer status before it ended (its verdicts are unknown)");
                continue;
            }
            _deaths += status.Count("peer-dead");
            _verdicts.AddRange(status.Events.Where(e => e.Kind == "peer-dead").Select(e => $"node {k}: {e}"));
        }
    }
}
