using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace L2Balance.Proxy.Auth;

/// <summary>
/// The users file for SOCKS5 username/password authentication (RFC 1929), written by
/// <c>l2proxy passwd</c>. One line per user:
/// <code>NAME:pbkdf2-sha256:ITERATIONS:SALT_BASE64:HASH_BASE64</code>
/// Blank lines and lines starting with <c>#</c> are comments. A loaded store is immutable; reload
/// the file to see changes.
/// </summary>
public sealed class UserStore
{
    /// <summary>The only hash scheme: PBKDF2 with HMAC-SHA-256 (RFC 8018 section 5.2).</summary>
    public const string Scheme = "pbkdf2-sha256";

    /// <summary>
    /// 100 000 PBKDF2 iterations: the project's chosen cost, tens of milliseconds per check on a
    /// current core. Above NIST SP 800-132's floor of 1 000 and below OWASP's 2023 advice of 600 000
    /// for PBKDF2-HMAC-SHA256, trading some offline-guessing cost for handshake latency; the cache of
    /// successful checks keeps the cost to once per user and password. Stored per line, so it can be
    /// raised later without a format change.
    /// </summary>
    public const int DefaultIterations = 100_000;

    /// <summary>Accepted iteration counts when reading; the upper bound stops a line from costing seconds per login.</summary>
    public const int MinIterations = 1_000, MaxIterations = 10_000_000;

    /// <summary>16 random bytes of salt (NIST SP 800-132 asks for at least 128 bits).</summary>
    public const int SaltBytes = 16;

    /// <summary>32 bytes: the SHA-256 output size, so PBKDF2 runs one block.</summary>
    public const int HashBytes = 32;

    /// <summary>RFC 1929: ULEN and PLEN are one byte, so names and passwords are 1..255 bytes.</summary>
    public const int MaxNameBytes = 255, MaxPasswordBytes = 255;

    /// <summary>Most cached successful verifications; the cache is cleared when full.</summary>
    public const int MaxCacheEntries = 4096;

    private readonly Dictionary<string, UserEntry> _users;
    private readonly UserEntry _dummy;
    private readonly ConcurrentDictionary<(string User, string PasswordDigest), bool> _verified = new();

    private UserStore(Dictionary<string, UserEntry> users)
    {
        _users = users;
        // Unknown users are checked against this so that they cost as much as known ones
        // (a faster "no" would reveal which names exist).
        byte[] salt = RandomNumberGenerator.GetBytes(SaltBytes);
        _dummy = new UserEntry(DefaultIterations, salt, RandomNumberGenerator.GetBytes(HashBytes));
    }

    /// <summary>The number of users.</summary>
    public int Count => _users.Count;

    /// <summary>Whether a user is listed (for tests and diagnostics; never for authentication).</summary>
    public bool Contains(string user) => _users.ContainsKey(user);

    /// <summary>
    /// Reads a users file. Throws <see cref="InvalidDataException"/> with <c>path:line: message</c> for a bad line,
    /// or with the <c>chmod</c> that fixes it when the file is open to others (<see cref="CheckMode"/>), and the
    /// usual I/O exceptions when the file cannot be read. Every load checks, at start and on any reload.
    /// </summary>
    public static UserStore Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var handle = File.OpenHandle(path);
        // The mode of the file opened, not of the path: a swap between the check and the read cannot pass.
        if (!OperatingSystem.IsWindows() && CheckMode(path, File.GetUnixFileMode(handle)) is { } modeError)
        {
            throw new InvalidDataException(modeError);
        }

        using var stream = new FileStream(handle, FileAccess.Read);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return Parse(reader.ReadToEnd(), path);
    }

    /// <summary>
    /// Null when <paramref name="mode"/> keeps the hashes to their owner (and a group that only reads); otherwise why not,
    /// with the fix. As ssh refuses a private key others can read: the hashes can be guessed offline, and a file
    /// others can write lets them add a user.
    /// </summary>
    public static string? CheckMode(string path, UnixFileMode mode)
    {
        var problem = (mode & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute)) switch
        {
            var other when (other & UnixFileMode.OtherRead) != 0 => "is readable by others",
            var other when other != 0 => "is writable by others",
            _ when (mode & UnixFileMode.GroupWrite) != 0 => "is writable by its group",
            _ => null,
        };
        return problem is null ? null
            : $"{path} {problem} (mode {Convert.ToString((int)mode & 0x1FF, 8).PadLeft(4, '0')}): it holds password hashes; "
                + $"run chmod 600 {path} (or chmod 640 {path} with a group that l2proxy runs as)";
    }

    /// <summary>
    /// True when this user and password passed a check before (the cache of <see cref="Verify"/>): no PBKDF2 run,
    /// so the caller need not count it against the caps on concurrent checks.
    /// </summary>
    public bool IsKnownGood(string user, string password)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(password);
        return _verified.ContainsKey(CacheKey(user, password));
    }

    private static (string User, string PasswordDigest) CacheKey(string user, string password)
    {
        byte[] passwordBytes = Encoding.UTF8.GetBytes(password);
        try
        {
            return (user, Convert.ToHexString(SHA256.HashData(passwordBytes)));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(passwordBytes);
        }
    }

    /// <summary>Parses users-file text; <paramref name="path"/> only names the source in errors.</summary>
    public static UserStore Parse(string text, string path)
    {
        ArgumentNullException.ThrowIfNull(text);
        var users = new Dictionary<string, UserEntry>(StringComparer.Ordinal);
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (line.Length == 0 || line.TrimStart().StartsWith('#') || string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            if (ParseLine(line, out string? name, out var entry) is { } error)
            {
                throw new InvalidDataException($"{path}:{i + 1}: {error}");
            }

            if (!users.TryAdd(name!, entry!))
            {
                throw new InvalidDataException($"{path}:{i + 1}: user '{name}' is listed twice");
            }
        }

        return new UserStore(users);
    }

    private static string? ParseLine(string line, out string? name, out UserEntry? entry)
    {
        name = null;
        entry = null;
        string[] fields = line.Split(':');
        if (fields.Length != 5)
        {
            return $"expected NAME:{Scheme}:ITERATIONS:SALT:HASH (5 fields), found {fields.Length}";
        }

        if (CheckUserName(fields[0]) is { } nameError)
        {
            return nameError;
        }

        if (fields[1] != Scheme)
        {
            return $"unsupported hash scheme '{fields[1]}' (only {Scheme})";
        }

        if (!int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out int iterations)
            || iterations < MinIterations || iterations > MaxIterations)
        {
            return $"bad iteration count '{fields[2]}' ({MinIterations}..{MaxIterations})";
        }

        byte[]? salt = FromBase64(fields[3]);
        if (salt is null || salt.Length < SaltBytes)
        {
            return $"bad salt: expected base64 of at least {SaltBytes} bytes";
        }

        byte[]? hash = FromBase64(fields[4]);
        if (hash is null || hash.Length != HashBytes)
        {
            return $"bad hash: expected base64 of {HashBytes} bytes";
        }

        name = fields[0];
        entry = new UserEntry(iterations, salt, hash);
        return null;
    }

    private static byte[]? FromBase64(string text)
    {
        byte[] buffer = new byte[(text.Length * 3 / 4) + 3];
        return Convert.TryFromBase64String(text, buffer, out int written) ? buffer[..written] : null;
    }

    /// <summary>Null when <paramref name="user"/> is a valid name: 1..255 UTF-8 bytes, no ':' and no line break.</summary>
    public static string? CheckUserName(string user)
    {
        ArgumentNullException.ThrowIfNull(user);
        int bytes = Encoding.UTF8.GetByteCount(user);
        if (bytes is 0 or > MaxNameBytes)
        {
            return $"user name must be 1..{MaxNameBytes} bytes of UTF-8";
        }

        if (user.AsSpan().IndexOfAny(":\r\n") >= 0)
        {
            return "user name must not contain ':' or a line break";
        }

        return user.Trim().StartsWith('#') ? "user name must not start with '#'" : null;
    }

    /// <summary>Null when <paramref name="password"/> is 1..255 UTF-8 bytes (RFC 1929 PLEN).</summary>
    public static string? CheckPassword(string password)
    {
        ArgumentNullException.ThrowIfNull(password);
        int bytes = Encoding.UTF8.GetByteCount(password);
        return bytes is 0 or > MaxPasswordBytes ? $"password must be 1..{MaxPasswordBytes} bytes of UTF-8" : null;
    }

    /// <summary>
    /// Checks a user's password. Unknown users cost the same PBKDF2 run as known ones; the comparison
    /// is constant-time. Successful checks are cached by (user, SHA-256 of the password).
    /// </summary>
    public bool Verify(string user, string password)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(password);
        if (CheckPassword(password) is not null || Encoding.UTF8.GetByteCount(user) > MaxNameBytes)
        {
            return false;
        }

        byte[] passwordBytes = Encoding.UTF8.GetBytes(password);
        try
        {
            var key = (user, Convert.ToHexString(SHA256.HashData(passwordBytes)));
            if (_verified.ContainsKey(key))
            {
                return true;
            }

            bool known = _users.TryGetValue(user, out var entry);
            entry ??= _dummy;
            byte[] actual = Rfc2898DeriveBytes.Pbkdf2(passwordBytes, entry.Salt, entry.Iterations, HashAlgorithmName.SHA256, HashBytes);
            bool equal = CryptographicOperations.FixedTimeEquals(actual, entry.Hash);
            CryptographicOperations.ZeroMemory(actual);
            if (known && equal)
            {
                if (_verified.Count >= MaxCacheEntries)
                {
                    _verified.Clear();
                }

                _verified[key] = true;
                return true;
            }

            return false;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(passwordBytes);
        }
    }

    /// <summary>One line of the users file for <paramref name="user"/> with a fresh salt.</summary>
    public static string FormatLine(string user, string password, int iterations = DefaultIterations)
    {
        if ((CheckUserName(user) ?? CheckPassword(password)) is { } error)
        {
            throw new ArgumentException(error);
        }

        byte[] salt = RandomNumberGenerator.GetBytes(SaltBytes);
        byte[] passwordBytes = Encoding.UTF8.GetBytes(password);
        byte[] hash = Rfc2898DeriveBytes.Pbkdf2(passwordBytes, salt, iterations, HashAlgorithmName.SHA256, HashBytes);
        CryptographicOperations.ZeroMemory(passwordBytes);
        return string.Create(CultureInfo.InvariantCulture, $"{user}:{Scheme}:{iterations}:{Convert.ToBase64String(salt)}:{Convert.ToBase64String(hash)}");
    }

    /// <summary>
    /// Adds <paramref name="user"/> or changes their password, keeping every other line. The file is
    /// created with mode 0600 and replaced atomically (a temporary file in the same directory, then rename),
    /// so a crash leaves the old or the new file, never half of one.
    /// </summary>
    public static void SetPassword(string path, string user, string password)
    {
        ArgumentNullException.ThrowIfNull(path);
        string newLine = FormatLine(user, password);
        var lines = File.Exists(path) ? File.ReadAllText(path).Split('\n').Select(l => l.TrimEnd('\r')).ToList() : [];
        if (lines.Count > 0 && lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1);
        }

        int index = lines.FindIndex(l => l.StartsWith(user + ":", StringComparison.Ordinal));
        if (index >= 0)
        {
            lines[index] = newLine;
        }
        else
        {
            lines.Add(newLine);
        }

        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using (var stream = new FileStream(temp, options))
            {
                byte[] bytes = Encoding.UTF8.GetBytes(string.Join('\n', lines) + "\n");
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private sealed record UserEntry(int Iterations, byte[] Salt, byte[] Hash);
}
