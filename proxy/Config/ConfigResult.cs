namespace L2Balance.Proxy.Config;

/// <summary>
/// The outcome of reading a configuration: the options (only when there are no errors),
/// every error found (parsing does not stop at the first) and warnings.
/// </summary>
public sealed record ConfigResult(ProxyOptions? Options, IReadOnlyList<ConfigError> Errors, IReadOnlyList<string> Warnings)
{
    /// <summary>True when <see cref="Options"/> is usable.</summary>
    public bool Succeeded => Options is not null && Errors.Count == 0;
}

/// <summary>
/// One configuration error with its position, printed as <c>file:line:column: message</c>
/// (relayd parse.y style). Line and column are 1-based; line 0 means the error concerns the
/// file as a whole (it cannot be read, or a required keyword is missing) and then the text is
/// <c>file: message</c>.
/// </summary>
public readonly record struct ConfigError(string File, int Line, int Column, string Message)
{
    public override string ToString() => Line == 0
        ? $"{File}: {Message}"
        : $"{File}:{Line}:{Column}: {Message}";
}
