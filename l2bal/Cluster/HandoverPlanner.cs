namespace L2Balance.Balancer.Cluster;

/// <summary>The outcome of one planning step.</summary>
/// <param name="Held">What this node may accept now (to be written to its kernel filter).</param>
/// <param name="Released">Buckets dropped by this step.</param>
/// <param name="Claimed">Buckets taken by this step.</param>
/// <param name="Pending">Buckets of this node's target still waiting for a peer's release.</param>
internal sealed record HandoverPlan(BucketSet Held, int Released, int Claimed, int Pending)
{
    /// <summary>Held equals the target share.</summary>
    public bool Settled => Pending == 0;
}

/// <summary>
/// The hand-over handshake (docs/design.md#hand-back): release at once, claim only once nobody
/// else can still be holding. Transiently a bucket may be owned by nobody, never by two nodes.
/// </summary>
/// <remarks>
/// <para>What a peer holds is not sent bucket by bucket. A node's held set is always a subset of
/// its share in the table of the view it last advertised: on a view change it releases at once
/// and advertises the new view at once (a triggered advert), and it claims only inside the share
/// of a view it has already advertised. So a peer's advertised active-set view determines a
/// superset of what it holds, which is all that safety needs (over-estimating a peer's holdings
/// only delays a claim).</para>
/// <para>Claim rule (docs/design.md#hand-back: "the joiner claims a bucket only after the current holder
/// advertises a view in which it has released it"): bucket b of this node's target share is
/// claimed only when no live peer's latest advertised view gives b to that peer. Dead peers are
/// not consulted (their filter tables died with them, or their kernel lease expired), so
/// take-over from a dead peer is immediate.</para>
/// <para>Claims are gated (<c>claimsAllowed</c>) by the caller on two timing rules. (1) The current
/// view must have been advertised at least SettleTime ago, SettleTime ≥ the largest one-way
/// delivery delay: otherwise two nodes whose views change in opposite directions within one
/// delay can each claim b on the strength of the other's stale advert (HandoverSimulationTests
/// finds such collisions when the gate is removed). With the gate, if x claims
/// at t1 under a view advertised at a1 and x' at t2 under one advertised at a2, each claim needs
/// the other's new advert still undelivered: t1 &lt; a2 + D and t2 &lt; a1 + D, with t1 ≥ a1 + S and
/// t2 ≥ a2 + S, impossible for S ≥ D. (2) A node that just started listens for the dead time
/// first, else it would see no peers and claim everything. Both assume a peer is declared dead
/// only when it is (delays below the dead time), which the kernel lease backs up.</para>
/// </remarks>
/// <summary>A live peer and the table of the view in its latest accepted advert.</summary>
internal readonly record struct PeerView(int NodeId, OwnershipTable Table);

internal static class HandoverPlanner
{
    /// <summary>Plans one step for node <paramref name="self"/>.</summary>
    /// <param name="self">This node's id.</param>
    /// <param name="held">What this node's kernel accepts now.</param>
    /// <param name="target">The table of this node's current view.</param>
    /// <param name="livePeers">Every live peer with the table of the view in its latest accepted advert.</param>
    /// <param name="claimsAllowed">False while the view is younger than SettleTime or during the start-up listen: release only.</param>
    public static HandoverPlan Plan(int self, BucketSet held, OwnershipTable target, IReadOnlyCollection<PeerView> livePeers, bool claimsAllowed)
    {
        ArgumentNullException.ThrowIfNull(held);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(livePeers);
        if (held.Capacity != target.Buckets || livePeers.Any(p => p.Table.Buckets != target.Buckets))
        {
            throw new ArgumentException("All tables must range over the same bucket count.", nameof(target));
        }

        var next = new BucketSet(target.Buckets);
        int released = 0, claimed = 0, pending = 0;
        for (int b = 0; b < target.Buckets; b++)
        {
            bool mine = target.Owner(b) == self;
            bool has = held.Contains(b);
            if (!mine)
            {
                released += has ? 1 : 0;
                continue;
            }

            if (has || (claimsAllowed && livePeers.All(peer => peer.Table.Owner(b) != peer.NodeId)))
            {
                next.Add(b);
                claimed += has ? 0 : 1;
            }
            else
            {
                pending++;
            }
        }

        return new HandoverPlan(next, released, claimed, pending);
    }
}
