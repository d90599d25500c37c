using System.Security.Cryptography;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Net;

/// <summary>Which budget refused an ARP answer.</summary>
internal enum ArpLimit
{
    /// <summary>Within both budgets: answer.</summary>
    None,

    /// <summary>This requester asked more often than its budget allows.</summary>
    Requester,

    /// <summary>All requesters together asked more often than the node's budget allows.</summary>
    Total,
}

/// <summary>
/// A token bucket: <c>rate</c> tokens a second, at most <c>burst</c> saved up. Time is an
/// argument (docs/conventions.md §7), so it is pure and tested without a clock.
/// </summary>
internal struct TokenBucket
{
    private double _tokens;
    private TimeSpan _at;
    private bool _started;

    /// <summary>Takes one token at <paramref name="now"/> if there is one.</summary>
    public bool TryTake(TimeSpan now, double rate, double burst)
    {
        if (!_started)
        {
            (_tokens, _at, _started) = (burst, now, true);
        }
        else if (now > _at)
        {
            _tokens = Math.Min(burst, _tokens + ((now - _at).TotalSeconds * rate));
            _at = now;
        }
        if (_tokens < 1)
        {
            return false;
        }
        _tokens--;
        return true;
    }
}

/// <summary>
/// Budgets for answering who-has for the VIP: per requester (its sender MAC) and in total, so a
/// host that floods requests, or many forged requesters, cannot make the node send replies at
/// packet rate. A Linux neighbour asks once per reachable time and, resolving, at most once per
/// second (retrans_time), so the per-requester budget is far above any honest asker's.
/// </summary>
/// <remarks>
/// Requesters share a fixed table of slots picked by a keyed hash of their MAC (a per-process
/// random key, so an attacker cannot aim its MACs at one honest requester's slot): memory stays
/// bounded whatever MACs arrive; two requesters in one slot share its budget.
/// </remarks>
internal sealed class ArpAnswerLimiter
{
    /// <summary>Answers a second one requester gets: ten times what a resolving Linux neighbour asks.</summary>
    public const double RequesterRate = 10;

    /// <summary>Answers one requester may get at once.</summary>
    public const double RequesterBurst = 20;

    /// <summary>Answers a second in total: 500 requesters resolving the VIP at once each get theirs.</summary>
    public const double TotalRate = 500;

    /// <summary>Answers at once in total.</summary>
    public const double TotalBurst = 500;

    /// <summary>Slots of the per-requester table.</summary>
    public const int Slots = 1024;

    private readonly TokenBucket[] _requesters = new TokenBucket[Slots];
    private readonly ulong _key = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
    private TokenBucket _total;

    /// <summary>Whether a request from <paramref name="requester"/> at <paramref name="now"/> may be answered, or which budget refuses it.</summary>
    public ArpLimit Check(MacAddress requester, TimeSpan now)
    {
        var slot = (int)(SplitMix64.Mix(requester.Value ^ _key) % Slots);
        if (!_requesters[slot].TryTake(now, RequesterRate, RequesterBurst))
        {
            return ArpLimit.Requester;
        }
        return _total.TryTake(now, TotalRate, TotalBurst) ? ArpLimit.None : ArpLimit.Total;
    }
}
