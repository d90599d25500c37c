using System.Security.Cryptography;

namespace L2Balance.Common.Migration;

/// <summary>
/// The key of every migration channel of a cluster (docs/design.md#live-migration-design): HKDF-SHA256
/// of the cluster key, empty salt, info <see cref="Label"/>. l2bal derives it and hands it to l2proxy
/// (<c>key EPOCH HEX</c>), which never holds the cluster key; one derivation for both products.
/// </summary>
public static class MigrationChannelKey
{
    /// <summary>Bytes of the channel key.</summary>
    public const int Length = 32;

    /// <summary>The HKDF info string.</summary>
    public static ReadOnlySpan<byte> Label => "l2balance migration channel v1"u8;

    /// <summary>The channel key of <paramref name="clusterKey"/>.</summary>
    public static byte[] Derive(ReadOnlySpan<byte> clusterKey)
    {
        var key = new byte[Length];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, clusterKey, key, [], Label);
        return key;
    }
}
