using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>How a peer last signed and which keys it verifies with, as its accepted adverts say.</summary>
/// <param name="Version">The highest advert version heard from it within a dead time (an upgraded node sends both while a version-1 peer lives).</param>
/// <param name="KeyId">The id of the key its adverts are signed with.</param>
/// <param name="AlsoAccepts">The other key id it verifies with (0: none; a version-1 sender names none).</param>
/// <param name="HeardAt">When the advert this record comes from was accepted.</param>
internal readonly record struct PeerKeys(byte Version, uint KeyId, uint AlsoAccepts, TimeSpan HeardAt)
{
    /// <summary>Whether this peer verifies adverts signed with <paramref name="keyId"/>.</summary>
    public bool Accepts(uint keyId) => KeyId == keyId || AlsoAccepts == keyId;
}

/// <summary>A key id heard on the segment that this node does not hold (0: a version-1 advert, which names none).</summary>
/// <param name="KeyId">The id, as the unauthenticated advert names it.</param>
/// <param name="Source">The Ethernet source of the last such advert.</param>
/// <param name="LastHeard">When it was last heard.</param>
/// <param name="Count">Adverts heard with it.</param>
internal readonly record struct ForeignKey(uint KeyId, MacAddress Source, TimeSpan LastHeard, long Count);

/// <summary>What this node's next advert is: its version, the key that signs it, and whether a version-2 copy goes along.</summary>
/// <param name="Version">The lowest version a live peer sends (version 1 while one speaks only that).</param>
/// <param name="SigningKeyId">The current key once every live peer accepts it, the previous one until then.</param>
/// <param name="AlsoAccepts">The other key this node verifies with (0: none).</param>
/// <param name="AlsoSendV2">A version-1 advert is followed by a version-2 copy, so upgraded peers learn this node speaks version 2.</param>
internal readonly record struct AdvertChoice(byte Version, uint SigningKeyId, uint AlsoAccepts, bool AlsoSendV2);

/// <summary>The advert's version and key: negotiation and key rollover (docs/design.md#key-rollover, #advert-v2).</summary>
internal sealed partial class NodePolicy
{
    /// <summary>Distinct foreign key ids kept: a forger inventing ids costs a bounded table (the oldest is dropped).</summary>
    public const int MaxForeignKeys = 8;

    private readonly Dictionary<int, PeerKeys> _peerKeys = [];
    private readonly Dictionary<uint, ForeignKey> _foreign = [];
    private uint _currentKeyId;
    private uint _previousKeyId;
    private byte _highestVersion = AdvertCodec.HighestVersion;

    /// <summary>
    /// The keys this node holds (ids; <paramref name="previousKeyId"/> 0 when no key change is
    /// under way) and the highest advert version it speaks (1 pins it to what a version-1 daemon sends).
    /// </summary>
    public void UseKeys(uint currentKeyId, uint previousKeyId, byte highestVersion)
    {
        _currentKeyId = currentKeyId;
        _previousKeyId = previousKeyId;
        _highestVersion = highestVersion;
    }

    /// <summary>A valid advert was accepted from <paramref name="peer"/>: from now on, adverts that fail the HMAC cannot make this node yield.</summary>
    public void OnAdvertAccepted(int peer, in AdvertEnvelope envelope, TimeSpan now)
    {
        _verifiedAny = true;
        if (envelope.Version < AdvertCodec.Version2
            && _peerKeys.TryGetValue(peer, out var known) && known.Version >= AdvertCodec.Version2 && now - known.HeardAt <= _deadTime)
        {
            // The version-1 copy of an upgraded peer's pair: its version-2 advert says more (and
            // dates the record, so a peer that falls back to version 1 alone is seen as such after a dead time).
            return;
        }
        _peerKeys[peer] = new PeerKeys(envelope.Version, envelope.KeyId, envelope.AlsoAccepts, now);
    }

    /// <summary>How <paramref name="peer"/> last signed, or null if no advert of it was accepted.</summary>
    public PeerKeys? KeysOf(int peer) => _peerKeys.TryGetValue(peer, out var keys) ? keys : null;

    /// <summary>
    /// An advert that names a key this node does not hold (or, version 1, fails every key held).
    /// Returns true when the id is new or back after a dead time of silence: the moment to log it.
    /// </summary>
    public bool OnForeignKey(uint keyId, MacAddress source, TimeSpan now)
    {
        if (_foreign.TryGetValue(keyId, out var known))
        {
            _foreign[keyId] = known with { Source = source, LastHeard = now, Count = known.Count + 1 };
            return now - known.LastHeard > _deadTime;
        }
        if (_foreign.Count >= MaxForeignKeys)
        {
            _foreign.Remove(_foreign.Values.MinBy(f => f.LastHeard).KeyId);
        }
        _foreign[keyId] = new ForeignKey(keyId, source, now, 1);
        return true;
    }

    /// <summary>Foreign key ids heard within the last dead time, most recent first.</summary>
    public IReadOnlyList<ForeignKey> ForeignKeys(TimeSpan now) =>
        [.. _foreign.Values.Where(f => now - f.LastHeard <= _deadTime).OrderByDescending(f => f.LastHeard)];

    /// <summary>
    /// The next advert's version and key, from what the live peers sent: the lowest version any of
    /// them sends, and the current key only once each of them verifies it, so that a rolling key
    /// change or upgrade never leaves two groups that cannot read each other. While it listens
    /// after its start (a dead time) a node with a previous key signs with that one: it does not
    /// know every live peer yet, and in a rolling change the peers not yet restarted hold only it.
    /// </summary>
    public AdvertChoice ChooseAdvert(IEnumerable<int> livePeers, TimeSpan now)
    {
        ArgumentNullException.ThrowIfNull(livePeers);
        var version = _highestVersion;
        var allAcceptCurrent = true;
        foreach (var peer in livePeers)
        {
            if (_peerKeys.TryGetValue(peer, out var keys))
            {
                version = Math.Min(version, keys.Version);
                allAcceptCurrent &= keys.Accepts(_currentKeyId);
            }
        }
        var listening = _listeningSince is not { } since || now - since < _deadTime;
        var signing = _previousKeyId == 0 || (allAcceptCurrent && !listening) ? _currentKeyId : _previousKeyId;
        var other = _previousKeyId == 0 ? 0 : signing == _currentKeyId ? _previousKeyId : _currentKeyId;
        return new AdvertChoice((byte)version, signing, other, AlsoSendV2: version < AdvertCodec.Version2 && _highestVersion >= AdvertCodec.Version2);
    }
}
