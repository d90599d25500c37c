namespace L2Balance.Lab;

/// <summary>The outcome of a command run to completion (or killed at its timeout).</summary>
/// <param name="Command">The command line, for messages.</param>
/// <param name="ExitCode">The exit code; -1 when the command was killed at its timeout.</param>
/// <param name="StdOut">Everything it wrote to stdout.</param>
/// <param name="StdErr">Everything it wrote to stderr.</param>
/// <param name="TimedOut">True when the timeout expired and the process tree was killed.</param>
public sealed record LabRunResult(string Command, int ExitCode, string StdOut, string StdErr, bool TimedOut)
{
    /// <summary>True when the command exited with 0 before its timeout.</summary>
    public bool Succeeded => !TimedOut && ExitCode == 0;

    /// <summary>Throws <see cref="LabCommandException"/> unless the command succeeded.</summary>
    public LabRunResult EnsureSuccess()
    {
        if (!Succeeded)
        {
            throw new LabCommandException(ToString());
        }

        return this;
    }

    /// <summary>A multi-line description with the command, its exit and its output.</summary>
    public override string ToString() =>
        $"`{Command}` {(TimedOut ? "timed out" : $"exited {ExitCode}")}\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}";
}
