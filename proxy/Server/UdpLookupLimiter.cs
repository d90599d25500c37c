using L2Balance.Proxy.Diagnostics;

namespace L2Balance.Proxy.Server;

/// <summary>
/// Caps the name lookups that UDP datagrams wait for, per association and in total (issue 13). Each pending
/// lookup holds a copy of its datagram (up to 64 KiB) and a resolver thread (getaddrinfo blocks one), so
/// without a cap a client sending to ever new names grows both without bound. A datagram over a cap is
/// dropped unresolved and counted.
/// </summary>
internal sealed class UdpLookupLimiter
{
    /// <summary>8 per association: a client starting to talk to a few new names at once; repeats hit the association's cache.</summary>
    public const int PerAssociation = 8;

    /// <summary>64 in total: at most 4 MiB of datagram copies and 64 resolver threads however many clients ask.</summary>
    public const int Total = 64;

    private int _pending;

    /// <summary>Lookups pending now, in the process.</summary>
    public int Pending => Volatile.Read(ref _pending);

    /// <summary>
    /// Takes a place for one lookup of an association that has <paramref name="pendingInAssociation"/> pending:
    /// null when taken (give it back with <see cref="Exit"/>), otherwise the cap that refused it.
    /// </summary>
    public WorkLimit? TryEnter(int pendingInAssociation)
    {
        if (pendingInAssociation >= PerAssociation)
        {
            return WorkLimit.PerClient;
        }

        if (Interlocked.Increment(ref _pending) > Total)
        {
            Interlocked.Decrement(ref _pending);
            return WorkLimit.Total;
        }

        return null;
    }

    /// <summary>Gives back a place <see cref="TryEnter"/> took, once the lookup ended.</summary>
    public void Exit() => Interlocked.Decrement(ref _pending);
}
