using System.Net;
using L2Balance.Common.Logging;
using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Diagnostics;

/// <summary>
/// The proxy's log events, one method per event, each with its own stable id (<see cref="EventIds"/>,
/// docs/events.md), in Dante's spirit: one line per session event naming client, destination and
/// reason. A line reads <c>l2proxy[PID]: LEVEL[ID]: message</c>. Every text that can come from the
/// network (user names, destinations with their domain names, parser and socket details) goes through
/// <see cref="LogText.Escape(string?, int)"/> here, so no client can end a line or forge the next (issue 13).
/// </summary>
public sealed class ProxyLog
{
    private readonly LogWriter _writer;
    private readonly LogLevel _minimum;
    private readonly string _prefix;
    private readonly LogRateLimiter<SessionOutcome> _negotiationFailures;
    private readonly LogRateLimiter<WorkLimit> _passwordChecksLimited;
    private readonly LogRateLimiter<WorkLimit> _udpLookupsLimited;
    private readonly LogRateLimiter<ProxyLoop> _loopFailures;
    private readonly LogRateLimiter<bool> _spliceFallbacks;
    private readonly LogRateLimiter<PortRangeUse> _portRangeExhausted;

    /// <param name="writer">Where the lines go.</param>
    /// <param name="debug">Dante's <c>debug</c> level: above 0, debug lines are written and negotiation failures are not rate-limited.</param>
    /// <param name="time">The clock of the rate limit; the system's when null (tests pass their own).</param>
    public ProxyLog(LogWriter writer, int debug, TimeProvider? time = null)
    {
        _writer = writer;
        _minimum = debug > 0 ? LogLevel.Debug : LogLevel.Info;
        _prefix = $"l2proxy[{Environment.ProcessId}]: ";
        _negotiationFailures = new LogRateLimiter<SessionOutcome>(TimeSpan.FromSeconds(10), time);
        _passwordChecksLimited = new LogRateLimiter<WorkLimit>(TimeSpan.FromSeconds(10), time);
        _udpLookupsLimited = new LogRateLimiter<WorkLimit>(TimeSpan.FromSeconds(10), time);
        _loopFailures = new LogRateLimiter<ProxyLoop>(TimeSpan.FromSeconds(10), time);
        _spliceFallbacks = new LogRateLimiter<bool>(TimeSpan.FromSeconds(10), time);
        _portRangeExhausted = new LogRateLimiter<PortRangeUse>(TimeSpan.FromSeconds(10), time);
    }

    public bool IsEnabled(LogLevel level) => level >= _minimum;

    public void Listening(EndPoint endPoint) =>
        Write(LogLevel.Info, EventIds.Listening, $"listening on {endPoint}");

    public void MetricsListening(EndPoint endPoint) =>
        Write(LogLevel.Info, EventIds.MetricsListening, $"metrics at http://{endPoint}/metrics");

    public void ListenFailed(string what, string error) =>
        Write(LogLevel.Error, EventIds.ListenFailed, $"cannot listen on {what}: {error}");

    public void Stopping(string reason, long active) =>
        Write(LogLevel.Info, EventIds.Stopping, $"stopping ({reason}); {active} sessions still open are closed");

    public void ConfigWarning(string message) =>
        Write(LogLevel.Warning, EventIds.ConfigWarning, $"configuration: {LogText.Escape(message)}");

    public void ConfigReloaded(string source, int clientRules, int socksRules) =>
        Write(LogLevel.Info, EventIds.ConfigReloaded, $"configuration reloaded from {source}: {clientRules} client rules, {socksRules} socks rules for new sessions");

    public void ConfigReloadFailed(string source, string errors) =>
        Write(LogLevel.Error, EventIds.ConfigReloadFailed, $"reload refused, the running configuration of {source} stays: {errors}");

    public void ConfigReloadKept(string settings) =>
        Write(LogLevel.Warning, EventIds.ConfigReloadKept, $"reload: {settings} changed but need a restart; their running values stay");

    public void PrivilegesDropped(string user) =>
        Write(LogLevel.Info, EventIds.PrivilegesDropped, $"running as user {user}");

    public void ClientRefused(EndPoint client, EndPoint local, string reason) =>
        Write(LogLevel.Info, EventIds.ClientRefused, $"block: client {client} -> {local}: {reason}");

    public void RequestPassed(in RuleVerdict verdict, string what, EndPoint client, string route)
    {
        if ((verdict.Log & RuleLog.Connect) != 0)
        {
            Write(LogLevel.Info, EventIds.RequestPassed, $"pass({RuleNumber(verdict)}): {what} {client} {LogText.Escape(route)}");
        }
    }

    public void RequestBlocked(in RuleVerdict verdict, string what, EndPoint client, string destination)
    {
        // An implicit block (no rule matched) is always logged, as Dante does with block(0).
        if (verdict.Rule is null || verdict.Log != RuleLog.None)
        {
            var because = verdict.Rule is { } rule
                ? $"socks rule #{rule.Number} (line {rule.Line})"
                : "no socks rule passes it";
            Write(LogLevel.Info, EventIds.RequestBlocked, $"block({RuleNumber(verdict)}): {what} {client} -> {LogText.Escape(destination)}: {because}");
        }
    }

    public void SessionEnded(RuleLog log, string what, EndPoint client, string destination, long up, long down, TimeSpan duration, string how)
    {
        if ((log & RuleLog.Disconnect) != 0)
        {
            Write(LogLevel.Info, EventIds.SessionEnded,
                $"done: {what} {client} -> {LogText.Escape(destination)}: {up} B up, {down} B down, {duration.TotalSeconds:0.000} s ({LogText.Escape(how)})");
        }
    }

    public void SessionFailed(RuleLog log, string what, EndPoint client, string destination, SessionOutcome outcome, string detail)
    {
        if ((log & RuleLog.Error) != 0 || log == RuleLog.None && IsEnabled(LogLevel.Debug))
        {
            Write(LogLevel.Info, EventIds.SessionFailed, $"error: {what} {client} -> {LogText.Escape(destination)}: {outcome}: {LogText.Escape(detail)}");
        }
    }

    /// <summary>A GSS-API session was refused or ended by a failed token: the reason class and the library's text, escaped.</summary>
    public void GssapiFailed(EndPoint client, Auth.GssapiFailure failure, string detail) =>
        Write(LogLevel.Info, EventIds.GssapiFailed, $"block: client {client}: gssapi authentication failed ({ProxyCounters.Snake(failure.ToString())}): {LogText.Escape(detail)}");

    /// <summary>A GSS-API context and protection-level subnegotiation completed (debug 1).</summary>
    public void GssapiAuthenticated(EndPoint client, string principal, Protocol.GssapiProtection level)
    {
        if (IsEnabled(LogLevel.Debug))
        {
            Write(LogLevel.Debug, EventIds.GssapiAuthenticated, $"client {client}: gssapi principal '{LogText.Escape(principal)}', protection {ProxyCounters.Snake(level.ToString())}");
        }
    }

    public void AuthFailed(EndPoint client, string user) =>
        Write(LogLevel.Info, EventIds.AuthFailed, $"block: client {client}: username/password authentication failed for user '{LogText.Escape(user)}'");

    /// <summary>
    /// A session ended during negotiation (malformed input, timeout, bad version). These can
    /// repeat at packet rate from a scanner, so each outcome is logged at most once per 10 s, with
    /// how many were not (every one when debug is on); the counters always count them.
    /// </summary>
    public void NegotiationFailed(EndPoint client, SessionOutcome outcome, string detail)
    {
        var due = _negotiationFailures.ShouldLog(outcome, out var notLogged);
        if (IsEnabled(LogLevel.Debug))
        {
            Write(LogLevel.Info, EventIds.NegotiationFailed, $"negotiation: {client}: {outcome}: {LogText.Escape(detail)}");
        }
        else if (due)
        {
            var skipped = notLogged == 0 ? "" : $", {notLogged} more since the last";
            Write(LogLevel.Info, EventIds.NegotiationFailed, $"negotiation: {client}: {outcome}: {LogText.Escape(detail)} (logged once per 10 s per reason{skipped})");
        }
    }

    public void Probed(EndPoint client) =>
        Write(LogLevel.Debug, EventIds.Probed, $"negotiation: {client}: closed before sending anything (a port check)");

    public void UdpAssociated(EndPoint client, EndPoint relay) =>
        Write(LogLevel.Debug, EventIds.UdpAssociated, $"udp associate: {client} relay {relay}");

    public void WorkerStarted(int index, int pid) =>
        Write(LogLevel.Info, EventIds.WorkerStarted, $"worker {index} started (pid {pid})");

    public void WorkerExited(int index, int pid, string cause) =>
        Write(LogLevel.Error, EventIds.WorkerExited, $"worker {index} (pid {pid}) {cause}; restarting");

    public void Unexpected(string where, Exception exception) =>
        Write(LogLevel.Error, EventIds.Unexpected, $"unexpected error in {LogText.Escape(where)}: {LogText.Escape(exception?.ToString(), UnexpectedMaxChars)}");

    /// <summary>
    /// A client reached a cap on concurrent RFC 1929 checks (<see cref="Auth.PasswordCheckLimiter"/>) and was refused without
    /// a check. A flood repeats this at connection rate: logged once per 10 s per cap; counted always.
    /// </summary>
    public void PasswordChecksLimited(EndPoint client, WorkLimit limit, int cap)
    {
        if (_passwordChecksLimited.ShouldLog(limit, out var notLogged))
        {
            var scope = limit == WorkLimit.PerClient ? "per client address" : "in total";
            Write(LogLevel.Warning, EventIds.PasswordChecksLimited,
                $"password checks: {client} refused without a check, {cap} checks at once {scope} (logged once per 10 s per cap{More(notLogged)})");
        }
    }

    /// <summary>
    /// A UDP datagram needed a name lookup while an association's or the process's lookups were at
    /// their cap; it was dropped. Logged once per 10 s per cap; counted always.
    /// </summary>
    public void UdpLookupsLimited(EndPoint client, WorkLimit limit, int cap)
    {
        if (_udpLookupsLimited.ShouldLog(limit, out var notLogged))
        {
            var scope = limit == WorkLimit.PerClient ? "for one association" : "in total";
            Write(LogLevel.Warning, EventIds.UdpLookupsLimited,
                $"udp: datagram from {client} dropped unresolved, {cap} lookups pending {scope} (logged once per 10 s per cap{More(notLogged)})");
        }
    }

    /// <summary>
    /// A long-lived loop (accept, UDP poller, metrics) caught an error and goes on after <paramref name="backoff"/>
    /// (null: the loop's own growing pause). Logged once per 10 s per loop; counted always.
    /// </summary>
    public void LoopFailed(ProxyLoop loop, string where, string error, TimeSpan? backoff)
    {
        if (_loopFailures.ShouldLog(loop, out var notLogged))
        {
            var after = backoff is { } pause ? $"{pause.TotalMilliseconds:0} ms" : "a pause of at most 1 s";
            Write(LogLevel.Error, EventIds.LoopFailed,
                $"{loop} loop ({LogText.Escape(where)}) failed: {LogText.Escape(error, UnexpectedMaxChars)}; going on after {after} (logged once per 10 s per loop{More(notLogged)})");
        }
    }

    /// <summary>A relay direction could not make its pipe and copies instead. Logged once per 10 s; counted always.</summary>
    public void SpliceFallback(EndPoint client, string error)
    {
        if (_spliceFallbacks.ShouldLog(true, out var notLogged))
        {
            Write(LogLevel.Warning, EventIds.SpliceFallback,
                $"relay: {client}: {LogText.Escape(error)}; this direction copies through user space (logged once per 10 s{More(notLogged)})");
        }
    }

    /// <summary>No port of the range was free for a socket (docs/design.md#single-ip-mode); once per use per 10 s.</summary>
    public void PortRangeExhausted(PortRangeUse use, string range, EndPoint client, string destination)
    {
        if (_portRangeExhausted.ShouldLog(use, out var notLogged))
        {
            Write(LogLevel.Warning, EventIds.PortRangeExhausted,
                $"port range {range} exhausted: no free port for {use} of {client} -> {LogText.Escape(destination)}; refused with a general failure (logged once per 10 s{More(notLogged)})");
        }
    }

    /// <summary>One line per move request of which some sessions stayed: counts by reason and the first error met.</summary>
    public void MigrationsRefused(string peer, int moved, string refusals, string? error) =>
        Write(LogLevel.Warning, EventIds.MigrationsRefused,
            $"move to {peer}: {moved} moved, stayed: {refusals}{(error is null ? "" : $"; first error: {LogText.Escape(error)}")}");

    /// <summary>One line per migration channel from a peer when it closes: sessions restored here and refused.</summary>
    public void MigrationsReceived(EndPoint peer, int restored, int refused, string? error) =>
        Write(LogLevel.Info, EventIds.MigrationsReceived,
            $"migration channel from {peer}: {restored} sessions restored, {refused} refused{(error is null ? "" : $"; first error: {LogText.Escape(error)}")}");

    /// <summary>The migration control socket could not be served (its name taken): this l2proxy runs without it.</summary>
    public void MigrationControlUnavailable(string socket, string error) =>
        Write(LogLevel.Warning, EventIds.MigrationControlUnavailable, $"migration control socket {socket} not served: {LogText.Escape(error)}; sessions of this process do not move");

    /// <summary>A session whose Go came but whose restored copy could not go live here: the old copy is closed, so it is lost (its legs reset).</summary>
    public void MigrationLost(EndPoint peer, ulong session, string client, string error) =>
        Write(LogLevel.Warning, EventIds.MigrationLost,
            $"migration from {peer}: session {session} of client {client} lost at Go (its copy there is closed): {LogText.Escape(error, UnexpectedMaxChars)}; its legs are reset");

    /// <summary>Stack traces are kept whole up to 8 KiB, on one line.</summary>
    private const int UnexpectedMaxChars = 8192;

    private static string More(long notLogged) => notLogged == 0 ? "" : $", {notLogged} more since the last";

    /// <summary>A request or a UDP destination refused because it is protected and no rule names it (docs/sockd-conf.md#protected-destinations).</summary>
    public void DestinationRefused(DestinationClass kind, string what, EndPoint client, string destination) =>
        Write(LogLevel.Info, EventIds.DestinationRefused,
            $"block(0): {what} {client} -> {LogText.Escape(destination)}: a {kind} destination, never relayed unless a socks rule names it");

    public void ResolvedAddressesSkipped(string what, EndPoint client, string destination, int skipped, int dialled) =>
        Write(LogLevel.Debug, EventIds.ResolvedAddressesSkipped,
            $"{what} {client} -> {LogText.Escape(destination)}: {skipped} resolved address(es) refused by the rules, {dialled} left to dial");

    public void NodeAddressesChanged(int count) =>
        Write(LogLevel.Debug, EventIds.NodeAddressesChanged, $"node addresses changed: {count} now, never relayed to unless a rule names them");

    public void AddressWatchFailed(string error) =>
        Write(LogLevel.Warning, EventIds.AddressWatchFailed, $"cannot watch the node's addresses ({error}); they are read again every second");

    private static string RuleNumber(in RuleVerdict verdict) => verdict.Rule is { } rule ? rule.Number.ToString(System.Globalization.CultureInfo.InvariantCulture) : "0";

    private void Write(LogLevel level, int eventId, string message)
    {
        if (level < _minimum)
        {
            return;
        }
        var name = level switch
        {
            LogLevel.Debug => "debug",
            LogLevel.Info => "info",
            LogLevel.Warning => "warning",
            _ => "error",
        };
        _writer.Write(level, $"{_prefix}{name}[{eventId}]: {message}");
    }
}
