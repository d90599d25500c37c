namespace L2Balance.Proxy.Diagnostics;

/// <summary>
/// The proxy's log event ids: one per event, each logged by one <see cref="ProxyLog"/> method of the
/// same name. Ids are stable and never reused; every one is documented in docs/events.md (## l2proxy).
/// 10, 17, 19 and 32 were declared by early versions and never logged: they stay unused. 30 (AcceptError,
/// every failed accept) was replaced by 62 (LoopFailed, throttled and counted) with issue 13: it stays unused.
/// </summary>
public static class EventIds
{
    public const int Listening = 1;
    public const int Stopping = 2;
    public const int ConfigWarning = 3;
    public const int ListenFailed = 4;
    public const int PrivilegesDropped = 5;
    public const int MetricsListening = 6;

    public const int ClientRefused = 11;
    public const int RequestPassed = 12;
    public const int RequestBlocked = 13;
    public const int SessionEnded = 14;
    public const int SessionFailed = 15;
    public const int AuthFailed = 16;
    public const int GssapiFailed = 17;
    public const int GssapiAuthenticated = 22;
    public const int UdpAssociated = 18;
    public const int NegotiationFailed = 20;
    public const int Probed = 21;

    public const int Unexpected = 31;

    public const int WorkerStarted = 40;
    public const int WorkerExited = 41;

    public const int DestinationRefused = 50;
    public const int ResolvedAddressesSkipped = 51;
    public const int NodeAddressesChanged = 52;
    public const int AddressWatchFailed = 53;

    public const int ConfigReloaded = 80;
    public const int ConfigReloadFailed = 81;
    public const int ConfigReloadKept = 82;

    // Issue 13: bounded work per client, loops that survive their errors (60-79).
    public const int PasswordChecksLimited = 60;
    public const int UdpLookupsLimited = 61;
    public const int LoopFailed = 62;
    public const int SpliceFallback = 63;

    // Issue 18: single-IP mode (90-99).
    public const int PortRangeExhausted = 90;

    // Issue 19: live migration (100-109).
    public const int MigrationsRefused = 100;
    public const int MigrationsReceived = 101;
    public const int MigrationControlUnavailable = 102;
    public const int MigrationLost = 103;
}
