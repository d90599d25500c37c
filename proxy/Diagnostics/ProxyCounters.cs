using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Diagnostics;

/// <summary>
/// Every counter of the proxy, always present (STYLE 23). Updated with Interlocked; read by logs,
/// tests and the metrics endpoint.
/// </summary>
public sealed class ProxyCounters
{
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

    public void AddBytes(long fromClient, long toClient)
    {
        Interlocked.Add(ref _bytesFromClients, fromClient);
        Interlocked.Add(ref _bytesToClients, toClient);
    }

    public void UdpAssociationStarted() => Interlocked.Increment(ref _udpAssociationsActive);

    public void UdpAssociationEnded() => Interlocked.Decrement(ref _udpAssociationsActive);

    public void UdpRelayed() => Interlocked.Increment(ref _udpDatagramsRelayed);

    public void UdpDrop(UdpDropReason reason) => Interlocked.Increment(ref _udpDrops[(int)reason]);
}
