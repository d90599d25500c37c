using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Diagnostics;

/// <summary>The daemon's own counters; every one exists in every build (docs/conventions.md §23).</summary>
internal sealed class BalancerCounters
{
    private readonly long[] _rejected = new long[Enum.GetValues<AdvertRejection>().Length];
    private long _advertsSent;
    private long _advertsReceived;
    private long _ownershipChanges;
    private long _kernelErrors;

    public long AdvertsSent => Interlocked.Read(ref _advertsSent);

    public long AdvertsReceived => Interlocked.Read(ref _advertsReceived);

    public long OwnershipChanges => Interlocked.Read(ref _ownershipChanges);

    public long KernelErrors => Interlocked.Read(ref _kernelErrors);

    public long Rejected(AdvertRejection reason) => Interlocked.Read(ref _rejected[(int)reason]);

    public void Sent() => Interlocked.Increment(ref _advertsSent);

    public void Received() => Interlocked.Increment(ref _advertsReceived);

    public long Reject(AdvertRejection reason) => Interlocked.Increment(ref _rejected[(int)reason]);

    public void OwnershipChanged() => Interlocked.Increment(ref _ownershipChanges);

    public void KernelError() => Interlocked.Increment(ref _kernelErrors);
}
