namespace L2Balance.Lab;

/// <summary>
/// The lab cannot run on this machine (not root, a tool or a binary is missing). The message
/// says what to do about it.
/// </summary>
public sealed class LabUnavailableException : Exception
{
    public LabUnavailableException()
    {
    }

    public LabUnavailableException(string message)
        : base(message)
    {
    }

    public LabUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
