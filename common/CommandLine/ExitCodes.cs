namespace L2Balance.Common.CommandLine;

/// <summary>
/// Exit codes of both programs, after sysexits(3): a wrong command line and a wrong
/// configuration are told apart from a failure at run time.
/// </summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;

    /// <summary>A failure at run time (no daemon answers, a socket cannot be bound...).</summary>
    public const int Failure = 1;

    /// <summary>EX_USAGE: the command line is wrong (unknown flag, missing or bad value).</summary>
    public const int Usage = 64;

    /// <summary>EX_CONFIG: a configuration (file, key file, users file) is wrong.</summary>
    public const int Config = 78;
}
