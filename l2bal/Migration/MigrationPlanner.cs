using System.Net;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Migration;

/// <summary>The sessions that go to one peer in one <c>move</c>, to its advertised address.</summary>
internal sealed record MigrationBatch(int Owner, IPEndPoint Peer, IReadOnlyList<ProxySession> Sessions);

/// <summary>A session that cannot move, and the reason counted for it.</summary>
internal readonly record struct MigrationRefusal(ProxySession Session, string Reason);

/// <summary>What a run moves (batches per owner, at most <see cref="MigrationPlanner.BatchLimit"/> sessions each), refuses (with reasons) and leaves here (this node owns its bucket).</summary>
internal sealed record MigrationPlan(IReadOnlyList<MigrationBatch> Batches, IReadOnlyList<MigrationRefusal> Refused, int OwnedHere)
{
    /// <summary>Sessions in the batches.</summary>
    public int ToMove => Batches.Sum(b => b.Sessions.Count);
}

/// <summary>
/// Which session goes where (docs/design.md#migration-orchestration), a pure function: each session
/// goes to the owner of its client's bucket; the proxy's own refusals (<c>stays=REASON</c>) and
/// sessions whose owner has no advertised address (or no owner) are refused; those this node
/// owns stay, uncounted (nothing to move).
/// </summary>
internal static class MigrationPlanner
{
    /// <summary>
    /// Sessions per <c>move</c>: every flow of a batch is dropped from the batch's start until its own
    /// session is sent, so the batch's length bounds each session's pause; 16 since the runs of 2026-12-04: the ends' p99
    /// over 100 ms in 4 of 270 runs (6 of 50 with 32), node 2 emptied later than 2 s in 5 (docs/benchmarks.md#batches-of-16-2026-12-04).
    /// </summary>
    public const int BatchLimit = 16;

    /// <param name="sessions">The proxy's list.</param>
    /// <param name="self">This node's id.</param>
    /// <param name="ownerOf">The owner of a session's client bucket in the table that applies (0: none).</param>
    /// <param name="addresses">The peers' advertised node addresses, by id.</param>
    /// <param name="served">Whether this node's filter has a flow table for an address family (a VIP of it); null: both.</param>
    public static MigrationPlan Plan(IReadOnlyList<ProxySession> sessions, int self, Func<ProxySession, int> ownerOf, IReadOnlyDictionary<int, NodeAddresses> addresses,
        Func<System.Net.Sockets.AddressFamily, bool>? served = null)
    {
        ArgumentNullException.ThrowIfNull(sessions);
        ArgumentNullException.ThrowIfNull(ownerOf);
        ArgumentNullException.ThrowIfNull(addresses);
        var byOwner = new SortedDictionary<int, List<ProxySession>>();
        var refused = new List<MigrationRefusal>();
        int here = 0;
        foreach (var session in sessions)
        {
            if (session.Stays is { } reason)
            {
                refused.Add(new MigrationRefusal(session, reason));
                continue;
            }
            if (served?.Invoke(session.ClientVip.AddressFamily) == false)
            {
                // The moved-flow sets live in the flow table of the session's family (docs/design.md#migration-filter).
                refused.Add(new MigrationRefusal(session, MigrationReasons.FamilyNotServed));
                continue;
            }
            int owner = ownerOf(session);
            if (owner == self)
            {
                here++;
            }
            else if (owner == 0 || !addresses.ContainsKey(owner))
            {
                refused.Add(new MigrationRefusal(session, MigrationReasons.PeerUnreachable));
            }
            else
            {
                if (!byOwner.TryGetValue(owner, out var list))
                {
                    byOwner[owner] = list = [];
                }
                list.Add(session);
            }
        }
        // Batches of at most BatchLimit, owners alternating: a flow is dropped from its batch's start to its own Go.
        var batches = byOwner.SelectMany(p => p.Value.Chunk(BatchLimit).Select((chunk, i) => (i, Batch: new MigrationBatch(p.Key, addresses[p.Key].Endpoint, chunk))))
            .OrderBy(b => b.i).Select(b => b.Batch);
        return new MigrationPlan([.. batches], refused, here);
    }
}

/// <summary>The refusal reasons both halves count (docs/design.md#migration-orchestration), and l2bal's own.</summary>
internal static class MigrationReasons
{
    public const string NotSingleIp = "not-single-ip";
    public const string GssapiProtected = "gssapi-protected";
    public const string NotEstablished = "not-established";
    public const string TooLarge = "too-large";
    public const string RestoreFailed = "restore-failed";
    public const string PeerUnreachable = "peer-unreachable";
    public const string NoKey = "no-key";
    public const string Workers = "workers";

    /// <summary>l2bal only: the moved-out set could not be changed, so nothing of the batch was asked to move.</summary>
    public const string FilterFailed = "filter-failed";

    /// <summary>l2bal only: a session on an address of a family this node has no VIP (so no flow table, no moved-flow sets) for.</summary>
    public const string FamilyNotServed = "family-not-served";

    /// <summary>l2bal only: the proxy failed mid-move and still lists the session (it stays), or named a reason not in this list.</summary>
    public const string ProxyFailed = "proxy-failed";

    /// <summary>Every reason counted, in the order status lists them (a bounded set: the metric's label values).</summary>
    public static readonly IReadOnlyList<string> All =
        [NotSingleIp, GssapiProtected, NotEstablished, TooLarge, RestoreFailed, PeerUnreachable, NoKey, Workers, FilterFailed, FamilyNotServed, ProxyFailed];

    /// <summary>The reason as counted: one of <see cref="All"/>, else <see cref="ProxyFailed"/>.</summary>
    public static string Counted(string reason) => All.Contains(reason) ? reason : ProxyFailed;
}
