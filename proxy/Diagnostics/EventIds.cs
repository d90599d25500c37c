namespace L2Balance.Proxy.Diagnostics;

/// <summary>
/// Registry of the proxy's log event ids. Ids are stable and never reused (docs/conventions.md §21, YARP EventIds.cs).
/// </summary>
public static class EventIds
{
    public const int Listening = 1;
    public const int Stopping = 2;
    public const int ConfigWarning = 3;
    public const int ListenFailed = 4;
    public const int PrivilegesDropped = 5;

    public const int ClientAccepted = 10;
    public const int ClientRefused = 11;
    public const int RequestPassed = 12;
    public const int RequestBlocked = 13;
    public const int SessionEnded = 14;
    public const int SessionFailed = 15;
    public const int AuthFailed = 16;
    public const int BindReplyPassed = 17;
    public const int UdpAssociated = 18;
    public const int UdpDropped = 19;

    public const int WorkerStarted = 40;
    public const int WorkerExited = 41;

    public const int AcceptError = 30;
    public const int UnexpectedError = 31;
    public const int LogDropped = 32;
}
