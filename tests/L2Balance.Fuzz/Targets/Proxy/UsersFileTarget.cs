using System.Security.Cryptography;
using System.Text;
using L2Balance.Proxy.Auth;

namespace L2Balance.Fuzz.Targets.Proxy;

/// <summary>
/// The users file of <c>l2proxy passwd</c> (<see cref="UserStore.Parse"/>): a bad line is an
/// <see cref="InvalidDataException"/> naming <c>path:line</c>, its documented refusal; anything
/// else thrown is a crash.
/// </summary>
public sealed class UsersFileTarget : TextTarget<UserStore>
{
    /// <summary>Iterations of the seeds' lines: the lowest accepted, so building seeds costs nothing.</summary>
    private const int Iterations = UserStore.MinIterations;

    public override string Name => "users-file";

    public override string Product => "proxy";

    public override string EntryPoint => "UserStore.Parse";

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        Utf8(Line("alice", "secret", Iterations) + "\n"),
        Utf8($"# users\n\n{Line("alice", "a", Iterations)}\r\n{Line("b\u00f6b", "p\u00e4ss", Iterations)}\n   # indented\n"),
        // The highest count accepted, written in place of the hash's own: parsing never runs PBKDF2.
        Utf8(Line(new string('n', 255), new string('p', 255), Iterations)
            .Replace($":{Iterations}:", $":{UserStore.MaxIterations}:", StringComparison.Ordinal)),
    ];

    public override IReadOnlyList<byte[]> Tokens { get; } =
        [.. new[] { ":", UserStore.Scheme, "\n", "#", "1000", "10000000", "10000001", "999", "AAAA", "====", "+/", "\r" }.Select(Utf8)];

    /// <summary>A line as <see cref="UserStore.FormatLine"/> writes it, with a fixed salt: the same seeds, so the same inputs, in every run.</summary>
    private static string Line(string user, string password, int iterations)
    {
        byte[] salt = [.. Enumerable.Range(0, UserStore.SaltBytes).Select(i => (byte)(i * 7))];
        byte[] hash = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, UserStore.HashBytes);
        return $"{user}:{UserStore.Scheme}:{iterations}:{System.Convert.ToBase64String(salt)}:{System.Convert.ToBase64String(hash)}";
    }

    protected override UserStore Parse(string input) => UserStore.Parse(input, "users");

    protected override bool IsAccepted(UserStore result) => true;

    /// <summary>Only <see cref="InvalidDataException"/> with the file's name: what the daemon reports for a bad file.</summary>
    public override bool IsDocumentedRejection(Exception exception) =>
        exception is InvalidDataException && exception.Message.StartsWith("users:", StringComparison.Ordinal);
}
