using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>
/// What the node does about spoofing on its segment (docs/design.md#spoofing): which spoof events
/// to record, and when to re-announce the VIP. Pure: the ARP responder's counts and the time in,
/// decisions out (docs/conventions.md §7, §33); the loop applies them.
/// </summary>
/// <remarks>
/// Spoofed frames arrive at the attacker's rate, so each kind is recorded (and thereby logged) at
/// its first frame and then at most once per <see cref="RecordInterval"/> while it goes on, with
/// the count so far (docs/conventions.md §22). Every spoof is answered by a gratuitous ARP, but
/// at most one per <see cref="ReannounceGap"/>: a claim that arrives sooner is answered when the
/// gap has passed, so the last word on the segment is always the cluster's, and an attacker cannot
/// make the node send more than ten announcements a second.
/// </remarks>
internal sealed class SpoofWatch
{
    /// <summary>The least time between two gratuitous ARPs of this node.</summary>
    public static readonly TimeSpan ReannounceGap = TimeSpan.FromMilliseconds(100);

    /// <summary>How often an ongoing spoof of one kind is recorded again.</summary>
    public static readonly TimeSpan RecordInterval = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan Never = TimeSpan.FromDays(-1);
    private readonly long[] _counted = new long[Enum.GetValues<SpoofKind>().Length];
    private readonly TimeSpan[] _recordedAt = [.. Enumerable.Repeat(Never, Enum.GetValues<SpoofKind>().Length)];
    private TimeSpan _announcedAt = Never;
    private bool _pending;

    /// <summary>
    /// Takes the totals of spoofed frames by kind (<paramref name="totals"/>, indexed by
    /// <see cref="SpoofKind"/>) and the MAC each last named; returns the events to record now.
    /// </summary>
    public IReadOnlyList<SpoofSeen> Observe(ReadOnlySpan<long> totals, ReadOnlySpan<MacAddress> offenders, TimeSpan now)
    {
        List<SpoofSeen>? record = null;
        for (var kind = SpoofKind.VipClaimed; (int)kind < _counted.Length; kind++)
        {
            var i = (int)kind;
            if (totals[i] <= _counted[i])
            {
                continue;
            }
            _counted[i] = totals[i];
            _pending = true;
            if (now - _recordedAt[i] >= RecordInterval)
            {
                _recordedAt[i] = now;
                (record ??= []).Add(new SpoofSeen(kind, offenders[i].ToString(), totals[i]));
            }
        }
        return record ?? (IReadOnlyList<SpoofSeen>)[];
    }

    /// <summary>Whether to send a gratuitous ARP now: a spoof waits for an answer and the gap since the last one has passed.</summary>
    public bool ReannounceDue(TimeSpan now) => _pending && now - _announcedAt >= ReannounceGap;

    /// <summary>A gratuitous ARP left at <paramref name="now"/> (a re-announcement or any other): the gap counts from here.</summary>
    public void Announced(TimeSpan now)
    {
        _announcedAt = now;
        _pending = false;
    }

    /// <summary>When a waiting re-announcement is due (the loop must step then), or <see cref="TimeSpan.MaxValue"/>.</summary>
    public TimeSpan NextDeadline => _pending ? _announcedAt + ReannounceGap : TimeSpan.MaxValue;
}
