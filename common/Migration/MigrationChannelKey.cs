using System.Security.Cryptography;

namespace L2Balance.Common.Migration;

/// <summary>
/// The key of every migration channel of a cluster (issue 19): HKDF-SHA256 of the cluster key with a
/// fixed label. l2bal derives it and hands it to l2proxy (<c>key EPOCH HEX</c> on the migration control
/// socket), so the cluster key never leaves l2bal; both sides use this one derivation.
/// </summary>
public static class MigrationChannelKey
{
    /// <summary>The length of the channel key: an AES-256 key.</summary>
    public const int Length = 32;

    private static readonly byte[] Label = "l2balance migration channel v1"u8.ToArray();

    /// <summary>The channel key of <paramref name="clusterKey"/>.</summary>
    public static byte[] Derive(ReadOnlySpan<byte> clusterKey)
    {
        var key = new byte[Length];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, clusterKey, key, [], Label);
        return key;
    }
}
