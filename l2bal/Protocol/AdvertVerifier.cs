namespace L2Balance.Balancer.Protocol;

/// <summary>
/// The receive path of adverts: <c>AdvertCodec.TryParse</c> (length, magic, version,
/// cluster, key id, HMAC, fields), then sender ≠ self, then replay, then configuration digest.
/// Holds private copies of the keys (<see cref="AdvertKeys"/>), zeroed on dispose (relayd purge_key).
/// </summary>
internal sealed class AdvertVerifier : IDisposable
{
    private readonly AdvertKeys _keys;
    private readonly uint _clusterId;
    private readonly int _selfId;
    private readonly UInt128 _configDigest;
    private readonly ReplayGuard _replay = new();
    private bool _disposed;

    /// <param name="key">The cluster key.</param>
    /// <param name="clusterId">This cluster's id.</param>
    /// <param name="selfId">This node's id.</param>
    /// <param name="configDigest">This node's configuration digest.</param>
    /// <param name="previousKey">During a key change, the key being replaced (empty: none).</param>
    /// <param name="highestVersion">The highest advert version accepted (a node pinned to version 1 refuses version 2, as a version-1 daemon does).</param>
    public AdvertVerifier(ReadOnlySpan<byte> key, uint clusterId, int selfId, UInt128 configDigest, ReadOnlySpan<byte> previousKey = default, byte highestVersion = AdvertCodec.HighestVersion)
    {
        _keys = new AdvertKeys(key, previousKey);
        HighestVersion = highestVersion;
        _clusterId = clusterId;
        _selfId = selfId;
        _configDigest = configDigest;
    }

    /// <summary>The highest advert version accepted.</summary>
    public byte HighestVersion { get; }

    /// <summary>As the full form, without the envelope.</summary>
    public bool TryAccept(ReadOnlySpan<byte> datagram, out Advert advert, out AdvertRejection rejection) =>
        TryAccept(datagram, out advert, out _, out rejection);

    /// <summary>Accepts a datagram or names why not. Only an accepted advert advances the replay state.
    /// On FromSelf and ConfigMismatch (authentic, but not to be acted on) <paramref name="advert"/> holds it;
    /// <paramref name="envelope"/> holds the version and key ids as far as the datagram got (BadHmac, UnknownKey: unauthenticated).</summary>
    public bool TryAccept(ReadOnlySpan<byte> datagram, out Advert advert, out AdvertEnvelope envelope, out AdvertRejection rejection)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!AdvertCodec.TryParse(datagram, _clusterId, _keys, HighestVersion, out advert, out envelope, out rejection))
        {
            return false;
        }

        rejection = advert.NodeId == _selfId ? AdvertRejection.FromSelf
            : !_replay.TryAccept(advert.NodeId, advert.Incarnation, advert.Sequence) ? AdvertRejection.Replayed
            : advert.ConfigDigest != _configDigest ? AdvertRejection.ConfigMismatch
            : AdvertRejection.None;
        if (rejection != AdvertRejection.None)
        {
            // An authentic advert from a node claiming our id, or with other cluster settings, is
            // kept for the caller: it is a misconfiguration to report and to yield to, never to act on.
            if (rejection is not (AdvertRejection.FromSelf or AdvertRejection.ConfigMismatch))
            {
                advert = default;
            }
            return false;
        }

        return true;
    }

    public void Dispose()
    {
        _keys.Dispose();
        _disposed = true;
    }
}
