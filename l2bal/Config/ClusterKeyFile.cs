using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using L2Balance.Common.Linux;
using Microsoft.Win32.SafeHandles;
using static L2Balance.Balancer.Interop.Accounts;

namespace L2Balance.Balancer.Config;

/// <summary>Owner, group and permission bits of a file, as <c>stat</c> shows them.</summary>
internal readonly record struct FileOwnership(uint Uid, uint Gid, UnixFileMode Mode);

/// <summary>
/// The cluster key file: read with its owner and mode checked on the open file, and made in one
/// safe step by <c>l2bal genkey --output FILE</c> (docs/design.md#verification). Whoever can read
/// the key can forge adverts and take the VIP; whoever can write it can split the cluster.
/// </summary>
internal static class ClusterKeyFile
{
    /// <summary>At least 16 bytes, as HMAC-SHA256 keys go (RFC 2104 §3: no shorter than the output would be better, 16 is the floor).</summary>
    public const int MinKeyBytes = 16;

    /// <summary>genkey's keys: 32 random bytes, written as 64 hex characters and a newline.</summary>
    public const int GeneratedKeyBytes = 32;

    /// <summary>A key file is a line; anything much larger is the wrong file.</summary>
    public const long MaxFileBytes = 4096;

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerAndGroup = OwnerOnly | UnixFileMode.GroupRead;
    private const UnixFileMode Permissions = (UnixFileMode)0x1ff;

    /// <summary>
    /// Reads the key of <paramref name="path"/>: the file's bytes without surrounding white space, at
    /// least <see cref="MinKeyBytes"/>, from a file only root or this process's user owns, that no
    /// one else can write and only the daemon's group can read. Null and <paramref name="error"/>
    /// (naming the file and the fix) otherwise. The caller zeroes the key after use.
    /// </summary>
    public static byte[]? Load(string path, out string? error)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            if (statx(handle, "", AT_EMPTY_PATH, STATX_BASIC_STATS, out var stat) != 0)
            {
                error = $"key file {path}: statx: {Errno.Name(Marshal.GetLastPInvokeError())}";
                return null;
            }
            var file = new FileOwnership(stat.stx_uid, stat.stx_gid, (UnixFileMode)stat.stx_mode & Permissions);
            error = Problem(path, file, SystemAccounts.EffectiveUserId, SystemAccounts.EffectiveGroupId,
                SystemAccounts.GroupId(SystemAccounts.DaemonAccount), SystemAccounts.GroupName);
            return error is null ? Read(handle, path, out error) : null;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            error = $"key file {path}: no such file (make one with 'l2bal genkey --output {path}')";
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error = $"key file {path}: {e.Message}";
            return null;
        }
    }

    /// <summary>
    /// What is wrong with a key file owned and moded as <paramref name="file"/> for a daemon running
    /// as <paramref name="daemonUid"/>:<paramref name="daemonGid"/>, or null when nothing is. The
    /// owner must be root or the daemon's user; nobody else may write it; others may not read it;
    /// its group may read it only when it is the daemon's group or <paramref name="daemonAccountGid"/>
    /// (the group <c>l2bal</c>, null when it does not exist).
    /// </summary>
    public static string? Problem(string path, FileOwnership file, uint daemonUid, uint daemonGid, uint? daemonAccountGid, Func<uint, string> groupName)
    {
        ArgumentNullException.ThrowIfNull(groupName);
        var groupMayRead = file.Gid == daemonGid || file.Gid == daemonAccountGid;
        var fix = groupMayRead ? $"chmod 640 {path}" : $"chmod 600 {path}";
        var mode = Octal(file.Mode);
        if (file.Uid != 0 && file.Uid != daemonUid)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"key file {path} is owned by uid {file.Uid}, who could change the cluster's key: chown {Owner(daemonAccountGid)} {path}");
        }
        if ((file.Mode & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
        {
            return $"key file {path} has mode {mode}: others can {((file.Mode & UnixFileMode.OtherRead) != 0 ? "read" : "write")} it: {fix}";
        }
        if ((file.Mode & UnixFileMode.GroupWrite) != 0)
        {
            return $"key file {path} has mode {mode}: group {groupName(file.Gid)} can write it: {fix}";
        }
        if ((file.Mode & UnixFileMode.GroupRead) != 0 && !groupMayRead)
        {
            var ways = daemonAccountGid is null ? fix : $"chown {Owner(daemonAccountGid)} {path}, or {fix}";
            return $"key file {path} has mode {mode} and group {groupName(file.Gid)}, which is not the daemon's: {ways}";
        }
        return null;
    }

    /// <summary>A fresh key as genkey writes it: <see cref="GeneratedKeyBytes"/> random bytes in hex and a newline.</summary>
    public static string NewKeyText() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(GeneratedKeyBytes)) + "\n";

    /// <summary>
    /// Writes a fresh key to <paramref name="path"/> in one step: a temporary file in the same
    /// directory, created exclusively with mode 0600, given to group <c>l2bal</c> with mode 0640 when
    /// that group exists, written and synced, then renamed over the path (which must not exist unless
    /// <paramref name="force"/>). No one ever sees a half-written or too-open key. Returns a line
    /// describing the file, or null and <paramref name="error"/>.
    /// </summary>
    public static string? Create(string path, bool force, out string? error)
    {
        ArgumentNullException.ThrowIfNull(path);
        var full = Path.GetFullPath(path);
        if (!force && (File.Exists(full) || Directory.Exists(full)))
        {
            error = $"genkey: {path} exists: give --force to replace it (peers keep the old key until it is copied to them)";
            return null;
        }
        var group = SystemAccounts.GroupId(SystemAccounts.DaemonAccount);
        var temp = Path.Combine(Path.GetDirectoryName(full) ?? "/", $".{Path.GetFileName(full)}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}.tmp");
        var bytes = Encoding.ASCII.GetBytes(NewKeyText());
        try
        {
            using (var stream = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
                UnixCreateMode = OwnerOnly,
            }))
            {
                if (group is { } gid && fchown(stream.SafeFileHandle, uint.MaxValue, gid) != 0)
                {
                    throw new IOException($"cannot give it to group {SystemAccounts.DaemonAccount} ({Errno.Name(Marshal.GetLastPInvokeError())}): run genkey as root");
                }
                File.SetUnixFileMode(stream.SafeFileHandle, group is null ? OwnerOnly : OwnerAndGroup);
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            // Without --force, rename must not replace: .NET links the new name (fails if it exists), then unlinks the old.
            File.Move(temp, full, overwrite: force);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
            error = File.Exists(full) && !force
                ? $"genkey: {path} exists: give --force to replace it"
                : $"genkey: cannot write {path}: {e.Message}";
            return null;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
        error = null;
        var owner = SystemAccounts.EffectiveUserId == 0 ? "root" : $"uid {SystemAccounts.EffectiveUserId}";
        return group is null
            ? $"wrote a new key to {path} (owner {owner}, mode 0600; no group '{SystemAccounts.DaemonAccount}' here): copy it to every node"
            : $"wrote a new key to {path} (owner {owner}, group {SystemAccounts.DaemonAccount}, mode 0640): copy it to every node";
    }

    private static byte[]? Read(SafeFileHandle handle, string path, out string? error)
    {
        var length = RandomAccess.GetLength(handle);
        if (length > MaxFileBytes)
        {
            error = $"key file {path}: {length} bytes, more than a key's {MaxFileBytes}; is this the key file?";
            return null;
        }
        var raw = new byte[length];
        var read = 0;
        int n;
        while (read < raw.Length && (n = RandomAccess.Read(handle, raw.AsSpan(read), read)) > 0)
        {
            read += n;
        }
        var text = raw.AsSpan(0, read).Trim(" \t\r\n\v\f"u8);
        var key = text.ToArray();
        CryptographicOperations.ZeroMemory(raw);
        if (key.Length < MinKeyBytes)
        {
            CryptographicOperations.ZeroMemory(key);
            error = $"key file {path}: the key has {key.Length} bytes; at least {MinKeyBytes} are needed (make one with 'l2bal genkey --output {path}')";
            return null;
        }
        error = null;
        return key;
    }

    private static string Owner(uint? daemonAccountGid) => daemonAccountGid is null ? "root" : $"root:{SystemAccounts.DaemonAccount}";

    private static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)(mode & Permissions), 8).PadLeft(3, '0');
}
