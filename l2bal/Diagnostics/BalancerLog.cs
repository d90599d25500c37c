using System.Globalization;
using L2Balance.Common.Logging;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Diagnostics;

/// <summary>
/// Stable ids of l2bal's log events: one per event, never reused (docs/events.md lists each with
/// its level and meaning). Ids 10–13 and 30 named broad categories before each event had its own
/// id, and 7 warned of a readable key file before such a file was refused; all stay retired.
/// </summary>
internal static class EventIds
{
    public const int Started = 1;
    public const int Stopping = 2;
    public const int StartFailed = 3;
    public const int PriorityNotRaised = 4;
    public const int RealTimeRefused = 5;

    public const int AdvertRejected = 20;
    public const int ConfigMismatch = 21;
    public const int AdvertSendFailed = 22;
    public const int GratuitousArpFailed = 23;

    public const int Unexpected = 31;

    public const int ConntrackReadFailed = 40;
    public const int KernelFilterFailed = 41;
    public const int LeaveReleaseFailed = 42;
    public const int RulesRemoveFailed = 43;

    public const int ListenCheckUnavailable = 50;
    public const int ListenCheckFailed = 51;
    public const int PortUnreachableWakeUnavailable = 52;

    public const int PeerAlive = 100;
    public const int PeerDead = 101;
    public const int PeerLeft = 102;
    public const int PeerStateChanged = 103;
    public const int ViewChanged = 104;
    public const int BucketsChanged = 105;
    public const int ReleasedAll = 106;
    public const int Stalled = 107;
    public const int LinkDown = 108;
    public const int LinkUp = 109;
    public const int LocalStateChanged = 110;
    public const int DrainFinished = 111;

    public const int ForeignKey = 120;

    public const int ControlRefused = 140;
    public const int ControlAcceptFailed = 141;

    public const int SpoofSeen = 150;
    public const int PacketSocketError = 151;
    public const int ReceiveLoopFault = 152;

    public const int ConfigReloaded = 170;
    public const int ConfigReloadFailed = 171;
    public const int ConfigReloadKept = 172;
    public const int ProbeCapabilitiesKept = 173;

    public const int MigrationRan = 190;
    public const int MigrationProxyFailed = 191;
}

/// <summary>
/// l2bal's log: one method per event, each with its own id (<see cref="EventIds"/>), one line per
/// event to standard error (journald adds the time when run as a service; we add it too for the
/// lab). State changes are logged once at info with their cause; rejected adverts, which can
/// arrive at packet rate, are counted always and logged once per reason per 10 s
/// (docs/conventions.md §22). Nothing reads these lines to learn a fact: the facts are counters
/// and <see cref="BalancerEvent"/>s in <c>status --json</c>.
/// </summary>
internal sealed class BalancerLog(TextWriter output, TimeProvider? time = null)
{
    private readonly LogRateLimiter<AdvertRejection> _rejections = new(TimeSpan.FromSeconds(10), time);
    private readonly LogRateLimiter<int> _foreignKeys = new(TimeSpan.FromSeconds(10), time);

    /// <summary>Keyed by the socket's role (<c>arp</c>, <c>watch</c>, <c>adverts</c>, <c>advert send</c>): a closed set.</summary>
    private readonly LogRateLimiter<string> _socketErrors = new(TimeSpan.FromSeconds(10), time);
    private readonly LogRateLimiter<int> _control = new(TimeSpan.FromSeconds(10), time);
    private readonly Lock _gate = new();

    public void Started(string description) => Info(EventIds.Started, description);

    public void Stopping() => Info(EventIds.Stopping, "stopping: telling peers this node leaves, removing its rules and the VIP");

    public void StartFailed(string iface, string error) => Error(EventIds.StartFailed, $"cannot start on {iface}: {error}");

    public void PriorityNotRaised(string errno) =>
        Warning(EventIds.PriorityNotRaised, $"cannot raise thread priority ({errno}): under CPU saturation peers may see this node's adverts late");

    public void RealTimeRefused(int priority, int nice, string errno) =>
        Warning(EventIds.RealTimeRefused, $"cannot give the loop real-time priority (SCHED_RR {priority}, {errno}): it runs at nice {nice}, and under CPU saturation peers may see its adverts late");

    public void ConfigReloaded(string source, string health) => Info(EventIds.ConfigReloaded, $"configuration reloaded from {source}: health {health}");

    public void ConfigReloadFailed(string errors) => Error(EventIds.ConfigReloadFailed, $"reload refused, the running configuration stays: {errors}");

    public void ConfigReloadKept(string settings) => Warning(EventIds.ConfigReloadKept, $"reload: {settings} changed but need a restart; their running values stay");

    public void ProbeCapabilitiesKept(string errno) => Warning(EventIds.ProbeCapabilitiesKept, $"could not clear the probe thread's ambient and inheritable capabilities ({errno}): exec: health commands may inherit them");

    /// <summary>A migration run (drain --migrate, migrate) ended: what moved, what stayed and why.</summary>
    public void MigrationRan(string command, string summary) => Info(EventIds.MigrationRan, $"{command}: {summary}");

    /// <summary>A request to l2proxy's migration socket failed: once per 10 s.</summary>
    public void MigrationProxyFailed(string error, long total)
    {
        if (_socketErrors.ShouldLog("migration proxy", out _))
        {
            Warning(EventIds.MigrationProxyFailed, $"l2proxy's migration socket: {error} ({total} so far; logged once per 10 s)");
        }
    }

    /// <summary>An advert could not be sent: once per 10 s (with the link down on the node it fails at every interval).</summary>
    public void AdvertSendFailed(string error, long total)
    {
        if (_socketErrors.ShouldLog("advert send", out _))
        {
            Warning(EventIds.AdvertSendFailed, $"cannot send advert: {error} ({total} so far; logged once per 10 s)");
        }
    }

    /// <summary>A packet socket returned an error instead of a frame (ENETDOWN with the interface down): once per socket per 10 s.</summary>
    public void PacketSocketError(string socket, string error, long total)
    {
        if (_socketErrors.ShouldLog(socket, out _))
        {
            Warning(EventIds.PacketSocketError, $"{socket} socket: {error} ({total} so far; counted, backing off and receiving again; logged once per 10 s)");
        }
    }

    /// <summary>An unexpected exception in a receive loop, which goes on after a back-off: once per loop per 10 s.</summary>
    public void ReceiveLoopFault(string loop, Exception e, long total)
    {
        if (_socketErrors.ShouldLog(loop + " fault", out _))
        {
            Error(EventIds.ReceiveLoopFault, $"{loop} receive loop: unexpected error, backing off and going on ({total} so far; logged once per 10 s): {e}");
        }
    }

    public void GratuitousArpFailed(string error) => Warning(EventIds.GratuitousArpFailed, $"cannot send gratuitous ARP: {error}");

    public void Unexpected(Exception e) => Error(EventIds.Unexpected, $"unexpected error, stopping: {e}");

    public void ConntrackReadFailed(string error) => Warning(EventIds.ConntrackReadFailed, $"cannot read conntrack for draining buckets: {error}");

    public void KernelFilterFailed(string error) => Error(EventIds.KernelFilterFailed, $"kernel filter failed, stopping: {error}");

    public void LeaveReleaseFailed(string error) =>
        Warning(EventIds.LeaveReleaseFailed, $"cannot release the buckets before leaving ({error}): not announcing the leave, peers cover after the dead time");

    public void RulesRemoveFailed(string error) => Warning(EventIds.RulesRemoveFailed, $"removing the rules: {error}");

    public void ListenCheckUnavailable(string error) =>
        Warning(EventIds.ListenCheckUnavailable, $"cannot ask the kernel for listening sockets ({error}): the full probe runs at every health interval");

    public void ListenCheckFailed(string error) =>
        Warning(EventIds.ListenCheckFailed, $"the listen check failed ({error}): the full probe runs at every health interval from now on");

    public void PortUnreachableWakeUnavailable(string error) =>
        Warning(EventIds.PortUnreachableWakeUnavailable, $"cannot read the port-unreachables of the VIP ({error}): dns:// probes run at their interval only");

    /// <summary>Logs a recorded event with its own id and level.</summary>
    /// <param name="e">The event.</param>
    /// <param name="self">This node's id, which the messages name.</param>
    public void Event(BalancerEvent e, int self)
    {
        switch (e)
        {
            case PeerAlive a:
                Info(EventIds.PeerAlive, $"peer {a.Peer} is alive ({Describe(a.State)})");
                break;
            case PeerDead d:
                Info(EventIds.PeerDead, Invariant($"peer {d.Peer} is dead: no advert for {d.SilenceMs:0} ms (dead time {d.DeadTimeMs:0} ms)"));
                break;
            case PeerLeft l:
                Info(EventIds.PeerLeft, $"peer {l.Peer} is dead: it announced it is leaving");
                break;
            case PeerStateChanged s:
                Info(EventIds.PeerStateChanged, $"peer {s.Peer} is now {Describe(s.To)} (was {Describe(s.From)})");
                break;
            case ViewChanged v:
                Info(EventIds.ViewChanged, $"node {self}: view changed: active nodes {{{string.Join(",", v.From)}}} -> {{{string.Join(",", v.To)}}}");
                break;
            case BucketsChanged b:
                Info(EventIds.BucketsChanged, $"node {self} now holds {b.Held} of {b.Buckets} buckets (claimed {b.Claimed}, released {b.Released}, waiting for {b.Pending})");
                break;
            case ReleasedAll r:
                Info(EventIds.ReleasedAll, $"node {self} released all {r.Count} buckets {r.Cause switch
                {
                    ReleaseCause.Stall => "after a stall",
                    ReleaseCause.LinkDown => "with the link down",
                    _ => $"because peer {r.DeclaredBy} declared this node dead (its advert no longer lists it alive); rejoining",
                }}");
                break;
            case Stalled s:
                Warning(EventIds.Stalled, Invariant($"this daemon was stalled for {s.DurationMs:0} ms (lease {s.LeaseMs:0} ms): releasing every bucket and listening for peers again"));
                break;
            case LinkDown l:
                Warning(EventIds.LinkDown, $"link {l.Interface} is down: releasing every bucket until it is back");
                break;
            case LinkUp l:
                Info(EventIds.LinkUp, $"link {l.Interface} is up: listening for peers for a dead time before claiming buckets");
                break;
            case LocalStateChanged c:
                Info(EventIds.LocalStateChanged, $"this node is now {Describe(c.State)}: {Because(c)}");
                break;
            case DrainFinished f:
                Info(EventIds.DrainFinished, $"{f.Buckets} released buckets have no flows left here; {f.StillDraining} still draining");
                break;
            case SpoofSeen p:
                Warning(EventIds.SpoofSeen, p.Spoof == Net.SpoofKind.ClusterMacSource
                    ? $"another host sends frames from the cluster MAC {p.Mac} ({p.Count} so far): a switch in unicast-flood mode learns it on that host's port; re-announcing the VIP (see docs/design.md#spoofing for the switch setting that stops it)"
                    : $"another host claims the VIP at {p.Mac} in ARP ({p.Count} so far): re-announcing it at the cluster MAC; logged once per 10 s while it goes on");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(e), e.GetType().Name, "an event without a log method");
        }
    }

    /// <summary>A rejected advert: logged at most once per reason per 10 s; counters keep the count.</summary>
    public void AdvertRejected(AdvertRejection reason, MacAddress from, long total)
    {
        if (!_rejections.ShouldLog(reason, out _))
        {
            return;
        }
        var eventId = reason == AdvertRejection.ConfigMismatch ? EventIds.ConfigMismatch : EventIds.AdvertRejected;
        var why = reason switch
        {
            AdvertRejection.BadHmac => "bad HMAC: the sender does not have this cluster's key",
            AdvertRejection.ConfigMismatch => "cluster settings differ (VIP, buckets, seed or node count): fix the configuration; the sender is ignored",
            AdvertRejection.Replayed => "replayed or out-of-order sequence",
            AdvertRejection.OtherCluster => "another cluster id on this segment",
            _ => reason.ToString(),
        };
        Warning(eventId, $"advert from {from} rejected: {why} ({total} so far; logged once per 10 s)");
    }

    /// <summary>
    /// Adverts under a key this node does not hold, newly heard: at most one line per 10 s however
    /// many ids a forger invents (status and the metrics list them; docs/design.md#key-rollover).
    /// </summary>
    public void ForeignKey(uint keyId, MacAddress from, uint currentKeyId, uint previousKeyId)
    {
        if (!_foreignKeys.ShouldLog(0, out var notLogged))
        {
            return;
        }
        var heard = keyId == 0 ? "a version-1 advert that no key of this node verifies" : $"adverts signed with key id {AdvertKeys.Format(keyId)}";
        var held = previousKeyId == 0 ? AdvertKeys.Format(currentKeyId) : $"{AdvertKeys.Format(currentKeyId)} and {AdvertKeys.Format(previousKeyId)}";
        Warning(EventIds.ForeignKey, $"key mismatch: {heard} from {from}; this node holds key id {held}: one of the two runs another key file ({notLogged} more not logged)");
    }

    /// <summary>A control request refused for want of privilege: any local user can repeat it, so at most once per 10 s; the counter keeps the count.</summary>
    public void ControlRefused(string verb, string caller, long total)
    {
        if (_control.ShouldLog(EventIds.ControlRefused, out _))
        {
            Warning(EventIds.ControlRefused, $"control request '{verb}' from {caller} refused: changes need root or the control group ({total} so far; logged once per 10 s)");
        }
    }

    /// <summary>A failed accept on the control socket; at most once per 10 s while it repeats.</summary>
    public void ControlAcceptFailed(string error, TimeSpan retryIn, long total)
    {
        if (_control.ShouldLog(EventIds.ControlAcceptFailed, out _))
        {
            Warning(EventIds.ControlAcceptFailed, Invariant($"accepting on the control socket failed ({error}); retrying in {retryIn.TotalMilliseconds:0} ms ({total} so far; logged once per 10 s)"));
        }
    }

    /// <summary>The words for an advertised state, as status and the logs show it.</summary>
    public static string Describe(AdvertState state) => state switch
    {
        AdvertState.Active => "active",
        AdvertState.Unhealthy => "unhealthy",
        AdvertState.Draining => "draining",
        AdvertState.Leaving => "leaving",
        _ => state.ToString(),
    };

    private static string Because(LocalStateChanged c) => c.Reason switch
    {
        StateReason.Started => "started",
        StateReason.HealthPassing => $"health probe passing ({c.Detail})",
        StateReason.WaitingForFirstProbe => $"waiting for the first health probe ({c.Detail}) to pass: no clients before the service answers",
        StateReason.HealthFailing => $"health probe failing: {c.Detail}",
        StateReason.HealthPassingAgain => $"health probe passing again ({c.Detail})",
        StateReason.DrainRequested => "drain requested",
        StateReason.UndrainRequested => "undrain requested",
        StateReason.Conflict => $"refusing to take buckets or its port slice: {c.Detail}",
        StateReason.ConflictEnded => $"no conflicting adverts for a dead time",
        _ => c.Reason.ToString(),
    };

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private void Info(int eventId, string message) => Write("info", eventId, message);

    private void Warning(int eventId, string message) => Write("warning", eventId, message);

    private void Error(int eventId, string message) => Write("error", eventId, message);

    private void Write(string level, int eventId, string message)
    {
        var line = string.Create(CultureInfo.InvariantCulture,
            $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} l2bal[{Environment.ProcessId}]: {level}[{eventId}]: {message}");
        lock (_gate)
        {
            output.WriteLine(line);
            output.Flush();
        }
    }
}
