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
/// The hand-over handshake (DESIGN.md "Membership"): release at once, claim only once nobody
/// else can still be holding. Transiently a bucket may be owned by nobody, never by two nodes.
/// </summary>
/// <remarks>
/// <para>What a peer holds is not sent bucket by bucket. A node's held set is always a subset of
/// its share in the table of the view it advertises: it releases a bucket before advertising a
/// view that gives it away, and claims only inside its share. So a peer's advertised active-set
/// view determines a superset of what it holds, which is all that safety needs (over-estimating
/// a peer's holdings only delays a claim).</para>
/// <para>Claim rule: bucket b of this node's target share is claimed only when every live
/// peer's latest advertised view also gives b to this node. That implies the peer does not hold
/// b (the handshake "the current holder advertises a view in which it has released it") and,
/// stronger, that no third node that a peer's stale view still favours can race us for b. Dead
/// peers are not consulted (their filter tables died with them), so take-over from a dead peer is
/// immediate. A node that just started must not claim before it has listened for the dead time,
/// else it would see no peers and claim everything: that hold-off is the daemon's job.</para>
/// </remarks>
internal static class HandoverPlanner
{
    /// <summary>Plans one step for node <paramref name="self"/>.</summary>
    /// <param name="self">This node's id.</param>
    /// <param name="held">What this node's kernel accepts now.</param>
    /// <param name="target">The table of this node's current view.</param>
    /// <param name="livePeerTables">For each live peer, the table of the view in its latest accepted advert.</param>
    public static HandoverPlan Plan(int self, BucketSet held, OwnershipTable target, IReadOnlyCollection<OwnershipTable> livePeerTables)
    {
        ArgumentNullException.ThrowIfNull(held);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(livePeerTables);
        if (held.Capacity != target.Buckets || livePeerTables.Any(t => t.Buckets != target.Buckets))
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

            if (has || livePeerTables.All(peer => peer.Owner(b) == self))
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
