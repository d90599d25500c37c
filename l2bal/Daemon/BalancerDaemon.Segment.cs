using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>The loop's step about the segment itself: spoofing the ARP responder saw, and the advert socket's errors.</summary>
internal sealed partial class BalancerDaemon
{
    private readonly SpoofWatch _spoofWatch = new();
    private readonly long[] _spoofTotals = new long[Enum.GetValues<SpoofKind>().Length];
    private readonly MacAddress[] _spoofOffenders = new MacAddress[Enum.GetValues<SpoofKind>().Length];
    private NodeResources? _resources;
    private long _advertSocketErrors;

    /// <summary>
    /// Spoofing on the segment since the last step: recorded (at most once per kind per 10 s) and
    /// answered by a gratuitous ARP within its rate (<see cref="SpoofWatch"/>, docs/design.md#spoofing);
    /// and the advert socket's errors (ENETDOWN with the interface down), logged once per 10 s.
    /// </summary>
    private void NoteSegment(NodeResources io, TimeSpan now)
    {
        io.Arp.TakeSpoofs(_spoofTotals, _spoofOffenders);
        foreach (var e in _spoofWatch.Observe(_spoofTotals, _spoofOffenders, now))
        {
            Record(e);
        }
        if (_spoofWatch.ReannounceDue(now))
        {
            Announce(io.Arp);
        }
        if (io.Adverts.SocketErrors != _advertSocketErrors)
        {
            _advertSocketErrors = io.Adverts.SocketErrors;
            _log.PacketSocketError("adverts", io.Adverts.LastSocketError ?? "?", _advertSocketErrors);
        }
    }
}
