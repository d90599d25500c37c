namespace L2Balance.Common.CommandLine;

/// <summary>
/// A reload's look at the settings it cannot apply to a running daemon: each one that changed is
/// named, so the daemon can refuse it by name while its running value stays (both programs' SIGHUP).
/// </summary>
public sealed class RestartOnlySettings
{
    private readonly List<string> _changed = [];

    /// <summary>The settings that changed, in the order they were checked.</summary>
    public IReadOnlyList<string> Changed => _changed;

    /// <summary>Notes <paramref name="name"/> when its value read differs from the running one.</summary>
    public RestartOnlySettings Check<T>(string name, T running, T read)
    {
        if (!EqualityComparer<T>.Default.Equals(running, read))
        {
            _changed.Add(name);
        }
        return this;
    }

    /// <summary>Notes <paramref name="name"/> when the list read differs from the running one, element by element.</summary>
    public RestartOnlySettings CheckAll<T>(string name, IEnumerable<T> running, IEnumerable<T> read)
    {
        ArgumentNullException.ThrowIfNull(running);
        ArgumentNullException.ThrowIfNull(read);
        if (!running.SequenceEqual(read))
        {
            _changed.Add(name);
        }
        return this;
    }
}
