using System.Security.Cryptography;

namespace L2Balance.Balancer.Protocol;

/// <summary>
/// The receive path of adverts: <c>AdvertCodec.TryParse</c> (length, magic, version,
/// cluster, HMAC, fields), then sender ≠ self, then replay, then configuration digest.
/// Holds a private copy of the key, zeroed on dispose (relayd purge_key).
/// </summary>
internal sealed class AdvertVerifier : IDisposable
{
    private readonly byte[] _key;
    private readonly uint _clusterId;
    private readonly int _selfId;
    private readonly UInt128 _configDigest;
    private readonly ReplayGuard _replay = new();
    private readonly IncrementalHash _hmac;
    private bool _disposed;

    public AdvertVerifier(ReadOnlySpan<byte> key, uint clusterId, int selfId, UInt128 configDigest)
    {
        if (key.Length < AdvertCodec.MinimumKeyLength)
        {
            throw new ArgumentException($"The cluster key must have at least {AdvertCodec.MinimumKeyLength} bytes.", nameof(key));
        }

        _key = key.ToArray();
        _hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key);
        _clusterId = clusterId;
        _selfId = selfId;
        _configDigest = configDigest;
    }

    /// <summary>Accepts a datagram or names why not. Only an accepted advert advances the replay state.
    /// On FromSelf and ConfigMismatch (authentic, but not to be acted on) <paramref name="advert"/> holds it.</summary>
    public bool TryAccept(ReadOnlySpan<byte> datagram, out Advert advert, out AdvertRejection rejection)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!AdvertCodec.TryParse(datagram, _clusterId, _hmac, out advert, out rejection))
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
        CryptographicOperations.ZeroMemory(_key);
        _hmac.Dispose();
        _disposed = true;
    }
}
