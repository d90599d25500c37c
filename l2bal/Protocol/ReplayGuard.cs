namespace L2Balance.Balancer.Protocol;

/// <summary>
/// Per-peer anti-replay state: the last (incarnation, sequence) accepted from each node id.
/// </summary>
/// <remarks>
/// An advert is fresh if its incarnation is newer than the last one seen from that peer, or the
/// same with a strictly greater sequence (carp(4) uses a 64-bit counter the same way). Entries are
/// kept when a peer is declared dead: forgetting them would let a captured advert of the dead
/// peer resurrect it, claiming buckets on its behalf. Incarnation is the sender's start time, so
/// a restarted daemon is accepted at once as long as its wall clock did not step backwards.
/// </remarks>
internal sealed class ReplayGuard
{
    private readonly Dictionary<int, (ulong Incarnation, ulong Sequence)> _last = [];

    /// <summary>True (and recorded) if the pair is newer than anything accepted from <paramref name="peerId"/>.</summary>
    public bool TryAccept(int peerId, ulong incarnation, ulong sequence)
    {
        if (_last.TryGetValue(peerId, out var last)
            && (incarnation < last.Incarnation || (incarnation == last.Incarnation && sequence <= last.Sequence)))
        {
            return false;
        }

        _last[peerId] = (incarnation, sequence);
        return true;
    }

    /// <summary>The last pair accepted from <paramref name="peerId"/>, if any.</summary>
    public (ulong Incarnation, ulong Sequence)? LastAccepted(int peerId) =>
        _last.TryGetValue(peerId, out var last) ? last : null;
}
