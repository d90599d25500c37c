namespace L2Balance.Proxy.Diagnostics;

/// <summary>
/// How a client session ended: one member per reason, reused by logs and counters
/// (docs/conventions.md §6; Kestrel RequestRejectionReason, OpenBSD carpstats).
/// </summary>
public enum SessionOutcome
{
    /// <summary>The relay ran and ended normally (both sides closed, or one side closed the session).</summary>
    Completed,
    /// <summary>A relay ended because one side reset or failed.</summary>
    RelayError,
    /// <summary>No traffic for timeout.io.</summary>
    IoTimeout,
    /// <summary>The client did not finish negotiation within timeout.negotiate.</summary>
    NegotiateTimeout,
    /// <summary>The client closed the connection during negotiation.</summary>
    ClientClosedEarly,
    /// <summary>The client sent bytes that are not a valid SOCKS message.</summary>
    Malformed,
    /// <summary>The first byte was neither 4 nor 5.</summary>
    BadVersion,
    /// <summary>None of the client's methods is configured.</summary>
    NoAcceptableMethod,
    /// <summary>RFC 1929 user name or password was wrong.</summary>
    AuthFailed,
    /// <summary>A client rule refused the connection.</summary>
    ClientBlocked,
    /// <summary>A socks rule refused the request.</summary>
    SocksBlocked,
    /// <summary>The command is not supported (e.g. UDP ASSOCIATE over SOCKS4).</summary>
    CommandNotSupported,
    /// <summary>The address type is not supported.</summary>
    AddressTypeNotSupported,
    /// <summary>The destination name could not be resolved.</summary>
    ResolveFailed,
    /// <summary>The outgoing connect failed (refused, unreachable, timed out).</summary>
    ConnectFailed,
    /// <summary>BIND: no connection arrived in time, or the listener failed.</summary>
    BindFailed,
    /// <summary>UDP ASSOCIATE: the relay socket could not be set up.</summary>
    UdpSetupFailed,
    /// <summary>Refused by a limit (max clients, max per address, max UDP associations).</summary>
    LimitReached,
    /// <summary>The proxy is shutting down.</summary>
    Shutdown,
    /// <summary>An unexpected internal error; logged with its exception.</summary>
    InternalError,
    /// <summary>The session moved to another node's l2proxy (issue 19); it goes on there.</summary>
    Migrated,
}

/// <summary>Why a UDP datagram was dropped, for counters (issue 3 exports them).</summary>
public enum UdpDropReason
{
    WrongSource,
    Malformed,
    Fragmented,
    Blocked,
    ResolveFailed,
    SendFailed,
    NoClientYet,
    /// <summary>The destination is never relayed unless a rule names it (docs/sockd-conf.md#protected-destinations).</summary>
    ProtectedDestination,
    /// <summary>The destination name needed a lookup while the association's or the process's lookups were at their cap.</summary>
    LookupLimit,
    /// <summary>A datagram of a GSS-API association at integrity or above that is not one RFC 1961 encapsulation message whose token unwraps (defective, replayed, or without confidentiality at level confidentiality).</summary>
    GssapiToken,
}

/// <summary>A cap on work one client can cause (issue 13); the label of <c>l2proxy_password_checks_refused_total</c> and <c>l2proxy_udp_lookups_refused_total</c>.</summary>
public enum WorkLimit
{
    /// <summary>The cap per client address (password checks) or per UDP association (lookups).</summary>
    PerClient,
    /// <summary>The cap for the whole process.</summary>
    Total,
}

/// <summary>A long-lived loop that logs, counts, backs off and goes on after an error; the label of <c>l2proxy_loop_errors_total</c>.</summary>
public enum ProxyLoop
{
    /// <summary>A SOCKS listener's accept loop.</summary>
    Accept,
    /// <summary>The UDP relay's poller thread.</summary>
    UdpPoller,
    /// <summary>The metrics endpoint's accept loop.</summary>
    Metrics,
}
