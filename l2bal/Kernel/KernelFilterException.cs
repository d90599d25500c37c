namespace L2Balance.Balancer.Kernel;

/// <summary>The kernel refused a filter operation; the message carries libnftables' own error text.</summary>
internal sealed class KernelFilterException : Exception
{
    public KernelFilterException()
    {
    }

    public KernelFilterException(string message)
        : base(message)
    {
    }

    public KernelFilterException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
