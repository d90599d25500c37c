namespace L2Balance.Proxy.Migration;

/// <summary>
/// Why a session stays on this node instead of moving; one member per reason (docs/conventions.md §6).
/// The words of <see cref="MigrationRefusals.Word"/> are those of l2bal's side of the interface
/// (docs/design.md#live-migration-design), in answers, logs and the metric's label.
/// </summary>
public enum MigrationRefusal
{
    /// <summary>The legs do not both use the service address (single-IP mode is off for this session).</summary>
    NotSingleIp,
    /// <summary>GSS-API with per-message protection: its security context cannot be exported.</summary>
    GssapiProtected,
    /// <summary>Not an established relay now: negotiating, half-closed, ending, or no such session.</summary>
    NotEstablished,
    /// <summary>The frozen state is above the channel's record limit.</summary>
    TooLarge,
    /// <summary>Freezing here or restoring on the peer failed.</summary>
    RestoreFailed,
    /// <summary>No channel to the peer's l2proxy, or it broke before the peer answered.</summary>
    PeerUnreachable,
    /// <summary>No channel key has been given (<c>key</c>).</summary>
    NoKey,
    /// <summary>With <c>--workers N</c>: the worker holding the session gave no answer (gone, or later than the supervisor waits).</summary>
    Workers,
}

/// <summary>The words of <see cref="MigrationRefusal"/>.</summary>
public static class MigrationRefusals
{
    private static readonly string[] Words = ["not-single-ip", "gssapi-protected", "not-established", "too-large", "restore-failed", "peer-unreachable", "no-key", "workers"];

    public static string Word(this MigrationRefusal refusal) => Words[(int)refusal];

    /// <summary>The refusal a word names, or null for any other text (a peer's answer is not trusted).</summary>
    public static MigrationRefusal? Parse(string word)
    {
        int i = Array.IndexOf(Words, word);
        return i < 0 ? null : (MigrationRefusal)i;
    }
}
