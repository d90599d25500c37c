using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using L2Balance.Common.Migration;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Migration;

/// <summary>Why a channel record was refused; the channel is closed after any of them.</summary>
public enum MigrationRecordRejection
{
    None,
    TooLong,
    Replayed,
    OutOfOrder,
    AuthenticationFailed,
}

/// <summary>
/// The record layer of the migration channel (issue 19): AES-256-GCM records numbered from 0 in each
/// direction, so a replayed, reordered, reflected or altered record is refused. The key is per
/// connection: HKDF-SHA256 of the channel key (itself HKDF of the cluster key, <see cref="DeriveChannelKey"/>)
/// salted with both sides' random nonces, so a recorded conversation does not replay into a new one.
/// Pure (docs/conventions.md §5): no sockets.
/// </summary>
/// <remarks>
/// <code>
/// record: length u32 (of the plaintext) | sequence u64 | ciphertext | tag (16)
/// nonce:  direction u32 (1 initiator, 2 responder) | sequence u64;  associated data: the 12 header bytes
/// </code>
/// </remarks>
public sealed class MigrationRecords : IDisposable
{
    public const int HeaderLength = 12;
    public const int TagLength = 16;
    public const int NonceLength = 16;

    /// <summary>The largest plaintext of one record: one session state with full socket buffers (docs/design.md#live-migration-design).</summary>
    public const int MaxPlaintextLength = 128 * 1024 * 1024;

    private const uint InitiatorDirection = 1;
    private const uint ResponderDirection = 2;

    private static readonly byte[] SessionLabel = "l2balance migration session v1"u8.ToArray();

    // One instance per direction: AesGcm is not thread-safe, and a channel's sender and reader run concurrently.
    private readonly AesGcm _seal;
    private readonly AesGcm _open;
    private readonly uint _sendDirection;
    private readonly uint _receiveDirection;
    private ulong _sent;
    private ulong _received;

    /// <param name="channelKey">The channel key of <see cref="DeriveChannelKey"/>.</param>
    /// <param name="initiatorNonce">The <see cref="NonceLength"/> random bytes the connecting side sent first.</param>
    /// <param name="responderNonce">The random bytes the accepting side answered with.</param>
    /// <param name="initiator">Whether this side connected.</param>
    public MigrationRecords(ReadOnlySpan<byte> channelKey, ReadOnlySpan<byte> initiatorNonce, ReadOnlySpan<byte> responderNonce, bool initiator)
    {
        if (initiatorNonce.Length != NonceLength || responderNonce.Length != NonceLength)
        {
            throw new ArgumentException($"the nonces are {NonceLength} bytes each");
        }

        Span<byte> salt = stackalloc byte[2 * NonceLength];
        initiatorNonce.CopyTo(salt);
        responderNonce.CopyTo(salt[NonceLength..]);
        Span<byte> key = stackalloc byte[32];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, channelKey, key, salt, SessionLabel);
        _seal = new AesGcm(key, TagLength);
        _open = new AesGcm(key, TagLength);
        CryptographicOperations.ZeroMemory(key);
        _sendDirection = initiator ? InitiatorDirection : ResponderDirection;
        _receiveDirection = initiator ? ResponderDirection : InitiatorDirection;
    }

    /// <summary>The key of every migration channel of a cluster: the cluster key never leaves l2bal, this derived one goes to l2proxy.</summary>
    public static byte[] DeriveChannelKey(ReadOnlySpan<byte> clusterKey) => MigrationChannelKey.Derive(clusterKey);

    /// <summary>Encrypts <paramref name="plaintext"/> as the next record of this side.</summary>
    public void Seal(ReadOnlySpan<byte> plaintext, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (plaintext.Length > MaxPlaintextLength)
        {
            throw new ArgumentException($"a record holds at most {MaxPlaintextLength} bytes", nameof(plaintext));
        }

        int length = HeaderLength + plaintext.Length + TagLength;
        var record = output.GetSpan(length)[..length];
        BinaryPrimitives.WriteUInt32BigEndian(record, (uint)plaintext.Length);
        BinaryPrimitives.WriteUInt64BigEndian(record[4..], _sent);
        Span<byte> nonce = stackalloc byte[12];
        Nonce(nonce, _sendDirection, _sent);
        _seal.Encrypt(nonce, plaintext, record.Slice(HeaderLength, plaintext.Length), record[(HeaderLength + plaintext.Length)..], record[..HeaderLength]);
        _sent++;
        output.Advance(length);
    }

    /// <summary>
    /// Opens the record at the start of <paramref name="input"/>: Ok with its plaintext and the bytes it
    /// took, NeedMoreData for a prefix, Invalid with the reason (then the channel must close).
    /// </summary>
    public ParseStatus TryOpen(ReadOnlySpan<byte> input, out byte[] plaintext, out int consumed, out MigrationRecordRejection reason)
    {
        plaintext = [];
        consumed = 0;
        reason = MigrationRecordRejection.None;
        if (input.Length < HeaderLength)
        {
            return ParseStatus.NeedMoreData;
        }

        uint length = BinaryPrimitives.ReadUInt32BigEndian(input);
        ulong sequence = BinaryPrimitives.ReadUInt64BigEndian(input[4..]);
        if (length > MaxPlaintextLength)
        {
            reason = MigrationRecordRejection.TooLong;
            return ParseStatus.Invalid;
        }

        if (sequence != _received)
        {
            reason = sequence < _received ? MigrationRecordRejection.Replayed : MigrationRecordRejection.OutOfOrder;
            return ParseStatus.Invalid;
        }

        int total = HeaderLength + (int)length + TagLength;
        if (input.Length < total)
        {
            return ParseStatus.NeedMoreData;
        }

        var opened = new byte[length];
        Span<byte> nonce = stackalloc byte[12];
        Nonce(nonce, _receiveDirection, sequence);
        try
        {
            _open.Decrypt(nonce, input.Slice(HeaderLength, (int)length), input.Slice(HeaderLength + (int)length, TagLength), opened, input[..HeaderLength]);
        }
        catch (AuthenticationTagMismatchException)
        {
            reason = MigrationRecordRejection.AuthenticationFailed;
            return ParseStatus.Invalid;
        }

        _received++;
        plaintext = opened;
        consumed = total;
        return ParseStatus.Ok;
    }

    /// <summary>How long the record of a <paramref name="header"/> is in all, or -1 before the header is whole.</summary>
    public static int RecordLength(ReadOnlySpan<byte> header) =>
        header.Length < HeaderLength ? -1 : HeaderLength + (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(header), (uint)MaxPlaintextLength + 1) + TagLength;

    public void Dispose()
    {
        _seal.Dispose();
        _open.Dispose();
    }

    private static void Nonce(Span<byte> nonce, uint direction, ulong sequence)
    {
        BinaryPrimitives.WriteUInt32BigEndian(nonce, direction);
        BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], sequence);
    }
}
