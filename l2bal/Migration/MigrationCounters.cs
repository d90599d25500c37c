namespace L2Balance.Balancer.Migration;

/// <summary>Migrations of this node's sessions to peers: in progress, done, refused by reason (status and metrics). Thread-safe.</summary>
internal sealed class MigrationCounters
{
    private readonly long[] _refused = new long[MigrationReasons.All.Count];
    private long _inProgress;
    private long _done;
    private long _proxyErrors;
    private long _conntrackDeleted;
    private long _conntrackMissing;
    private long _conntrackErrors;
    private long _movedOutResolved;
    private long _movedOutLeft;

    /// <summary>Sessions asked to move whose answer has not come yet.</summary>
    public long InProgress => Interlocked.Read(ref _inProgress);

    /// <summary>Sessions moved to a peer.</summary>
    public long Done => Interlocked.Read(ref _done);

    /// <summary>Requests to the local l2proxy that failed (unreachable, refused, outside the protocol).</summary>
    public long ProxyErrors => Interlocked.Read(ref _proxyErrors);

    /// <summary>Refused sessions by reason, every reason listed (0 included).</summary>
    public IReadOnlyDictionary<string, long> Refused =>
        MigrationReasons.All.Select((r, i) => (r, Interlocked.Read(ref _refused[i]))).ToDictionary(p => p.r, p => p.Item2);

    public void Started(int sessions) => Interlocked.Add(ref _inProgress, sessions);

    public void Moved()
    {
        Interlocked.Decrement(ref _inProgress);
        Interlocked.Increment(ref _done);
    }

    /// <summary>A session of a batch that stayed (its in-progress count ends).</summary>
    public void Stayed(string reason)
    {
        Interlocked.Decrement(ref _inProgress);
        Refuse(reason);
    }

    /// <summary>A session refused before it was asked to move.</summary>
    public void Refuse(string reason) => Interlocked.Increment(ref _refused[IndexOf(MigrationReasons.Counted(reason))]);

    public void ProxyError() => Interlocked.Increment(ref _proxyErrors);

    /// <summary>Conntrack entries of moved flows deleted at move time (ctnetlink).</summary>
    public long ConntrackDeleted => Interlocked.Read(ref _conntrackDeleted);

    /// <summary>Moved flows with no conntrack entry to delete (ENOENT: already gone).</summary>
    public long ConntrackMissing => Interlocked.Read(ref _conntrackMissing);

    /// <summary>Moved flows whose entry could not be deleted (any other errno, or the request failed).</summary>
    public long ConntrackErrors => Interlocked.Read(ref _conntrackErrors);

    /// <summary>
    /// Sessions whose flows l2bal took out of moved_out on a failure path (the proxy gone, an error mid-batch): to moved_away
    /// when they may have moved, back when the proxy still lists them.
    /// </summary>
    public long MovedOutResolved => Interlocked.Read(ref _movedOutResolved);

    /// <summary>Sessions whose flows the kernel refused to take out of moved_out (twice): they leave it on the set's timeout.</summary>
    public long MovedOutLeft => Interlocked.Read(ref _movedOutLeft);

    public void MovedOutResolvedOnFailure(long sessions) => Interlocked.Add(ref _movedOutResolved, sessions);

    public void MovedOutLeftToExpire(long sessions) => Interlocked.Add(ref _movedOutLeft, sessions);

    /// <summary>Counts one delete request's outcome.</summary>
    public void ConntrackDeletes(long deleted, long missing, long errors)
    {
        Interlocked.Add(ref _conntrackDeleted, deleted);
        Interlocked.Add(ref _conntrackMissing, missing);
        Interlocked.Add(ref _conntrackErrors, errors);
    }

    private static int IndexOf(string reason)
    {
        for (int i = 0; i < MigrationReasons.All.Count; i++)
        {
            if (MigrationReasons.All[i] == reason)
            {
                return i;
            }
        }
        throw new ArgumentOutOfRangeException(nameof(reason), reason, "not a counted reason");
    }
}
