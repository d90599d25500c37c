using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace L2Balance.Balancer.Protocol;

/// <summary>How an advert was sent, apart from what it says: its wire version and the keys it names.</summary>
/// <param name="Version">1 or 2 (docs/design.md#advert-v2).</param>
/// <param name="KeyId">The id of the key that signed it (<see cref="AdvertKeys.IdOf"/>); for a version-1 advert, the id of the key that verified it.</param>
/// <param name="AlsoAccepts">The id of the other key its sender verifies with during a key change, 0 for none (version 2 only).</param>
internal readonly record struct AdvertEnvelope(byte Version, uint KeyId, uint AlsoAccepts);

/// <summary>
/// The cluster keys a node holds: its current key and, during a key change, the previous one
/// (docs/design.md#key-rollover). Each is kept with its id and a reusable HMAC; the copies are
/// zeroed on dispose (relayd purge_key). Not thread-safe: one owner (the loop, or a verifier).
/// </summary>
internal sealed class AdvertKeys : IDisposable
{
    private static readonly byte[] IdLabel = Encoding.ASCII.GetBytes("l2bal advert key id\0");
    private readonly byte[] _current;
    private readonly byte[]? _previous;
    private readonly IncrementalHash _currentHmac;
    private readonly IncrementalHash? _previousHmac;

    /// <param name="current">The key to sign with once every live peer accepts it.</param>
    /// <param name="previous">The key being replaced, or empty when no key change is under way.</param>
    public AdvertKeys(ReadOnlySpan<byte> current, ReadOnlySpan<byte> previous = default)
    {
        RequireKey(current, nameof(current));
        _current = current.ToArray();
        _currentHmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _current);
        CurrentId = IdOf(current);
        // The same key given twice is no key change.
        if (!previous.IsEmpty && IdOf(previous) != CurrentId)
        {
            RequireKey(previous, nameof(previous));
            _previous = previous.ToArray();
            _previousHmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _previous);
            PreviousId = IdOf(previous);
        }
    }

    /// <summary>The current key's id.</summary>
    public uint CurrentId { get; }

    /// <summary>The previous key's id, 0 when none is held (or when it is the current key).</summary>
    public uint PreviousId { get; }

    /// <summary>
    /// A key's id: the first 4 bytes (big-endian) of SHA-256("l2bal advert key id\0" ‖ key), never 0.
    /// Not secret and not authenticated (anyone can write any id): it only names which key a
    /// sender used, so a mismatch is reported at once and the right key is tried first.
    /// </summary>
    public static uint IdOf(ReadOnlySpan<byte> key)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(IdLabel);
        sha.AppendData(key);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        sha.GetHashAndReset(hash);
        var id = BinaryPrimitives.ReadUInt32BigEndian(hash);
        return id == 0 ? 1 : id;
    }

    /// <summary>A key id as status, metrics and the logs print it: 8 hex digits.</summary>
    public static string Format(uint keyId) => keyId.ToString("x8", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The HMAC of the key with <paramref name="keyId"/>, or null when this node holds no such key.</summary>
    public IncrementalHash? For(uint keyId) =>
        keyId == CurrentId ? _currentHmac : keyId != 0 && keyId == PreviousId ? _previousHmac : null;

    /// <summary>The current key's HMAC.</summary>
    public IncrementalHash Current => _currentHmac;

    /// <summary>The previous key's HMAC, or null.</summary>
    public IncrementalHash? Previous => _previousHmac;

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_current);
        if (_previous is not null)
        {
            CryptographicOperations.ZeroMemory(_previous);
        }
        _currentHmac.Dispose();
        _previousHmac?.Dispose();
    }

    /// <summary>Refuses a key shorter than <see cref="AdvertCodec.MinimumKeyLength"/> bytes.</summary>
    public static void RequireKey(ReadOnlySpan<byte> key, string name)
    {
        if (key.Length < AdvertCodec.MinimumKeyLength)
        {
            throw new ArgumentException($"The cluster key must have at least {AdvertCodec.MinimumKeyLength} bytes.", name);
        }
    }
}
