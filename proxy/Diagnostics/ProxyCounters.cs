using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Diagnostics;

/// <summary>
/// Every counter of the proxy, always present (docs/conventions.md §23). Updated with Interlocked; read by logs,
/// tests and the metrics endpoint (<see cref="WritePrometheus"/>, in ProxyCounters.Prometheus.cs).
/// </summary>
public sealed partial class ProxyCounters
{
    /// <summary>
    /// Upper bounds (seconds) of the handshake latency histogram: 100 µs to 10 s. The low end
    /// resolves a namespace-local CONNECT (a few hundred µs); the high end the connect timeout range.
    /// </summary>
    public static readonly double[] HandshakeBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly long[] _handshakeBuckets = new long[HandshakeBuckets.Length];
    private long _handshakeCount;
    private long _handshakeTicks;
    private readonly long[] _outcomes = new long[Enum.GetValues<SessionOutcome>().Length];
    private readonly long[] _commands = new long[4];
    private readonly long[] _udpDrops = new long[Enum.GetValues<UdpDropReason>().Length];
    private long _sessionsActive;
    private long _sessionsTotal;
    private long _bytesFromClients;
    private long _bytesToClients;
    private long _udpAssociationsActive;
    private long _udpDatagramsRelayed;

    public long SessionsActive => Interlocked.Read(ref _sessionsActive);

    public long SessionsTotal => Interlocked.Read(ref _sessionsTotal);

    public long BytesFromClients => Interlocked.Read(ref _bytesFromClients);

    public long BytesToClients => Interlocked.Read(ref _bytesToClients);

    public long UdpAssociationsActive => Interlocked.Read(ref _udpAssociationsActive);

    public long UdpDatagramsRelayed => Interlocked.Read(ref _udpDatagramsRelayed);

    public long Outcome(SessionOutcome outcome) => Interlocked.Read(ref _outcomes[(int)outcome]);

    public long Command(SocksCommand command) => Interlocked.Read(ref _commands[(int)command]);

    public long UdpDropped(UdpDropReason reason) => Interlocked.Read(ref _udpDrops[(int)reason]);

    public void SessionStarted()
    {
        Interlocked.Increment(ref _sessionsActive);
        Interlocked.Increment(ref _sessionsTotal);
    }

    public void SessionEnded(SessionOutcome outcome)
    {
        Interlocked.Decrement(ref _sessionsActive);
        Interlocked.Increment(ref _outcomes[(int)outcome]);
    }

    public void CommandRequested(SocksCommand command) => Interlocked.Increment(ref _commands[(int)command]);

    /// <summary>Bytes relayed from a client towards its target; relays add each chunk as it moves.</summary>
    public void AddBytesFromClients(long bytes) => Interlocked.Add(ref _bytesFromClients, bytes);

    /// <summary>Bytes relayed from a target to its client; relays add each chunk as it moves.</summary>
    public void AddBytesToClients(long bytes) => Interlocked.Add(ref _bytesToClients, bytes);

    public void UdpAssociationStarted() => Interlocked.Increment(ref _udpAssociationsActive);

    public void UdpAssociationEnded() => Interlocked.Decrement(ref _udpAssociationsActive);

    /// <summary>One UDP datagram relayed, with its payload bytes (one of the two is 0).</summary>
    public void UdpRelayed(long fromClient, long toClient)
    {
        Interlocked.Increment(ref _udpDatagramsRelayed);
        if (fromClient != 0)
        {
            AddBytesFromClients(fromClient);
        }
        if (toClient != 0)
        {
            AddBytesToClients(toClient);
        }
    }

    public void UdpDrop(UdpDropReason reason) => Interlocked.Increment(ref _udpDrops[(int)reason]);

    /// <summary>Handshakes measured so far (accept to the success reply sent).</summary>
    public long HandshakeCount => Interlocked.Read(ref _handshakeCount);

    /// <summary>Records one handshake: from accept to the success reply sent.</summary>
    public void HandshakeCompleted(TimeSpan elapsed)
    {
        var seconds = elapsed.TotalSeconds;
        // Non-cumulative per bucket; the exposition sums them (Prometheus buckets are cumulative).
        int i = 0;
        while (i < HandshakeBuckets.Length && seconds > HandshakeBuckets[i])
        {
            i++;
        }
        if (i < HandshakeBuckets.Length)
        {
            Interlocked.Increment(ref _handshakeBuckets[i]);
        }
        Interlocked.Add(ref _handshakeTicks, elapsed.Ticks);
        Interlocked.Increment(ref _handshakeCount);
    }

    // Issue 13: bounded work per client and loops that survive their errors.
    private readonly long[] _passwordChecksRefused = new long[Enum.GetValues<WorkLimit>().Length];
    private readonly long[] _udpLookupsRefused = new long[Enum.GetValues<WorkLimit>().Length];
    private readonly long[] _loopErrors = new long[Enum.GetValues<ProxyLoop>().Length];
    private long _spliceFallbacks;

    /// <summary>RFC 1929 checks refused without running PBKDF2 because a cap on concurrent checks was reached.</summary>
    public long PasswordChecksRefused(WorkLimit limit) => Interlocked.Read(ref _passwordChecksRefused[(int)limit]);

    public void PasswordCheckRefused(WorkLimit limit) => Interlocked.Increment(ref _passwordChecksRefused[(int)limit]);

    /// <summary>UDP datagrams whose destination name was not looked up because a cap on pending lookups was reached.</summary>
    public long UdpLookupsRefused(WorkLimit limit) => Interlocked.Read(ref _udpLookupsRefused[(int)limit]);

    public void UdpLookupRefused(WorkLimit limit) => Interlocked.Increment(ref _udpLookupsRefused[(int)limit]);

    /// <summary>Errors a long-lived loop survived (logged, backed off, went on).</summary>
    public long LoopErrors(ProxyLoop loop) => Interlocked.Read(ref _loopErrors[(int)loop]);

    public void LoopError(ProxyLoop loop) => Interlocked.Increment(ref _loopErrors[(int)loop]);

    /// <summary>Relay directions that could not make a pipe (pipe2 failed) and copied through user space instead.</summary>
    public long SpliceFallbacks => Interlocked.Read(ref _spliceFallbacks);

    public void SpliceFellBack() => Interlocked.Increment(ref _spliceFallbacks);
}
