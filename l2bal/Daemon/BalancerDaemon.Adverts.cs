using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>Adverts in and out: the budgeted receive path, the version and key each advert goes out with, and their timing counters.</summary>
internal sealed partial class BalancerDaemon
{
    /// <summary>
    /// Frames read per step at most: a flood waits for the next step and never holds up the lease
    /// renewal and the node's own advert of this one (docs/design.md#advert-budget); a budget of
    /// rejected frames takes under a millisecond (docs/benchmarks.md#advert-reject-the-receive-ring-and-the-cheaper-compare-2026-12-03).
    /// </summary>
    internal const int AdvertBudget = 1024;

    /// <summary>
    /// After a step that rejected a frame, the loop sleeps this long before it looks at the socket
    /// again (deadlines, requests and probes still wake it): a flood costs at most a thousand
    /// wake-ups a second however fast it comes, and a peer's advert waits at most this long, a
    /// fraction of the shortest dead time (2 × 5 ms).
    /// </summary>
    internal static readonly TimeSpan RejectQuiet = TimeSpan.FromMilliseconds(1);

    /// <summary>The keys that sign this node's adverts, with reusable HMACs (the loop's thread only).</summary>
    private readonly AdvertKeys _keys;
    private byte[]? _frame;
    private TimeSpan? _lastAdvertAt;

    /// <summary>How the last advert went out (status).</summary>
    private AdvertChoice _sentWith;

    /// <summary>
    /// Takes at most <see cref="AdvertBudget"/> queued adverts: verifies each (cheap checks first,
    /// AdvertCodec), feeds the accepted ones to the membership and the policy, and counts, reports
    /// and (for a newcomer) yields to the rejected ones as <see cref="NodePolicy"/> decides.
    /// </summary>
    private void TakeAdverts(AdvertVerifier verifier, AdvertChannel adverts, TimeSpan now)
    {
        var frame = _frame ??= new byte[adverts.FrameBufferLength];
        var taken = 0;
        var rejected = false;
        // The log takes one frame per reason per 10 s: it is asked once per reason (fewer than 64) per step, not per frame.
        var loggedReasons = 0UL;
        for (; taken < AdvertBudget; taken++)
        {
            var length = adverts.TryReceive(frame, out var source);
            if (length == 0)
            {
                break;
            }
            var payload = frame.AsSpan(EthernetFrame.HeaderLength, length);
            if (verifier.TryAccept(payload, out var advert, out var envelope, out var rejection))
            {
                _counters.Received();
                _policy.OnAdvertAccepted(advert.NodeId, envelope, now);
                _engine.OnAdvert(advert, now);
                _migration?.OnAdvert(advert);
                continue;
            }
            var total = _counters.Reject(rejection);
            rejected = true;
            if (rejection == AdvertRejection.FromSelf && advert.Incarnation == _incarnation)
            {
                continue; // our own frame, looped back
            }
            NoteForeignKey(rejection, envelope, source, now);
            if ((loggedReasons & (1UL << (int)rejection)) == 0)
            {
                loggedReasons |= 1UL << (int)rejection;
                _log.AdvertRejected(rejection, source, total);
            }
            _policy.OnAdvertRejected(rejection, advert, source, now);
        }
        if (taken == AdvertBudget)
        {
            _counters.SpentAdvertBudget();
        }
        if (rejected)
        {
            _waiter?.QuietSocket(RejectQuiet);
        }
        _counters.AdvertKernelDrops = adverts.ReadKernelDrops();
    }

    /// <summary>A key this node does not hold, named by a version-2 advert (or a version-1 advert no key verifies): reported, logged when new.</summary>
    private void NoteForeignKey(AdvertRejection rejection, in AdvertEnvelope envelope, MacAddress source, TimeSpan now)
    {
        uint? keyId = rejection switch
        {
            AdvertRejection.UnknownKey => envelope.KeyId,
            AdvertRejection.BadHmac when envelope.Version == AdvertCodec.Version => 0,
            _ => null,
        };
        if (keyId is { } id && _policy.OnForeignKey(id, source, now))
        {
            _log.ForeignKey(id, source, _keys.CurrentId, _keys.PreviousId);
        }
    }

    /// <summary>
    /// Sends this node's advert in the version and under the key the policy chooses from the live
    /// peers (NodePolicy.ChooseAdvert); a version-1 advert is followed by a version-2 copy unless
    /// the node is pinned to version 1, so upgraded peers learn that it speaks version 2.
    /// </summary>
    private void Send(AdvertChannel adverts, bool settled)
    {
        var now = Now;
        var choice = _policy.ChooseAdvert(_engine.Peers.Keys.Where(_engine.IsAlive), now);
        SendOne(adverts, settled, new AdvertEnvelope(choice.Version, choice.SigningKeyId, choice.AlsoAccepts));
        if (choice.AlsoSendV2)
        {
            SendOne(adverts, settled, new AdvertEnvelope(AdvertCodec.Version2, choice.SigningKeyId, choice.AlsoAccepts));
        }
        _sentWith = choice;
        _migration?.SigningKey(choice.SigningKeyId, choice.SigningKeyId == _keys.PreviousId && _previousKey is not null ? _previousKey : _key);
        if (_lastAdvertAt is { } last)
        {
            _counters.AdvertGap(now - last, _options.AdvertInterval);
        }
        _lastAdvertAt = now;
    }

    private void SendOne(AdvertChannel adverts, bool settled, in AdvertEnvelope envelope)
    {
        var advert = _engine.BuildAdvert(_options.EffectiveClusterId, _configDigest, _incarnation, ++_sequence, Now, settled);
        if (envelope.Version == AdvertCodec.Version2 && _options.Migration is { } addresses)
        {
            advert = advert with { Addresses = addresses };
        }
        Span<byte> buffer = stackalloc byte[AdvertCodec.V2MaxLength];
        var length = AdvertCodec.Write(advert, envelope, _keys, buffer);
        try
        {
            adverts.Send(buffer[..length]);
            _counters.Sent();
        }
        catch (IOException e)
        {
            // A link that is down: peers will miss us, which is the truth.
            _counters.SendFailed();
            _log.AdvertSendFailed(e.Message, _counters.AdvertSendFailures);
        }
    }

    /// <summary>Notes a lease renewal: one later than the lease after the previous is a lapse (new flows were refused meanwhile).</summary>
    private void LeaseRenewed(TimeSpan now)
    {
        if (_lastLease > TimeSpan.Zero && now - _lastLease > _options.LeaseTime)
        {
            _counters.LeaseLapsed();
        }
        _lastLease = now;
    }

    /// <summary>A peer's status with the version and keys its adverts carry.</summary>
    private PeerStatus WithKeys(PeerStatus peer) => _policy.KeysOf(peer.NodeId) is { } keys
        ? peer with { Version = keys.Version, KeyId = AdvertKeys.Format(keys.KeyId), AlsoAccepts = keys.AlsoAccepts == 0 ? null : AdvertKeys.Format(keys.AlsoAccepts) }
        : peer;

    /// <summary>The advert part of status: how the last advert went out, the keys held, the foreign key ids heard.</summary>
    private AdvertStatus AdvertStatusAt(TimeSpan now)
    {
        var signing = _sentWith.SigningKeyId == 0 ? _keys.CurrentId : _sentWith.SigningKeyId;
        var version = _sentWith.Version == 0 ? _options.AdvertVersion : _sentWith.Version;
        return new AdvertStatus(version, _options.AdvertVersion, AdvertKeys.Format(signing),
            _keys.PreviousId == 0 ? [AdvertKeys.Format(_keys.CurrentId)] : [AdvertKeys.Format(_keys.CurrentId), AdvertKeys.Format(_keys.PreviousId)],
            [.. _policy.ForeignKeys(now).Select(f => new ForeignKeyStatus(f.KeyId == 0 ? "v1" : AdvertKeys.Format(f.KeyId), f.Source.ToString(),
                (long)(now - f.LastHeard).TotalMilliseconds, f.Count))]);
    }
}
