namespace L2Balance.Lab;

/// <summary>A lab setup command (ip, sysctl, …) failed; the message carries its output.</summary>
public sealed class LabCommandException : Exception
{
    public LabCommandException()
    {
    }

    public LabCommandException(string message)
        : base(message)
    {
    }

    public LabCommandException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
