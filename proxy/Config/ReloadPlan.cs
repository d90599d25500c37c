using L2Balance.Common.CommandLine;

namespace L2Balance.Proxy.Config;

/// <summary>
/// What a reload (SIGHUP, <c>systemctl reload</c>) may change, as Dante's SIGHUP does: the rules,
/// methods, users file, timeouts and limits apply to new sessions at once. What is set up once at
/// start (the listeners, the outbound addresses, the users to run as, the log outputs, the metrics
/// endpoint, the workers) needs a restart: its running value is kept and the reload names it.
/// </summary>
public static class ReloadPlan
{
    /// <summary>The options to serve with after a reload from <paramref name="running"/> to <paramref name="read"/>, and the settings kept because they need a restart.</summary>
    public static (ProxyOptions Options, IReadOnlyList<string> NeedRestart) Plan(ProxyOptions running, ProxyOptions read)
    {
        ArgumentNullException.ThrowIfNull(running);
        ArgumentNullException.ThrowIfNull(read);
        var restart = new RestartOnlySettings()
            .CheckAll("internal", running.Internal, read.Internal)
            .CheckAll("external", running.External, read.External)
            .Check("external.rotation", running.ExternalRotation, read.ExternalRotation)
            .Check("user.privileged", running.UserPrivileged, read.UserPrivileged)
            .Check("user.unprivileged", running.UserUnprivileged, read.UserUnprivileged)
            .CheckAll("logoutput", running.LogOutput, read.LogOutput)
            .CheckAll("errorlog", running.ErrorLog, read.ErrorLog)
            .Check("debug", running.Debug, read.Debug)
            .Check("metrics", running.Metrics, read.Metrics)
            .Check("workers", running.Workers, read.Workers);
        var options = read with
        {
            Internal = running.Internal,
            External = running.External,
            ExternalRotation = running.ExternalRotation,
            UserPrivileged = running.UserPrivileged,
            UserUnprivileged = running.UserUnprivileged,
            LogOutput = running.LogOutput,
            ErrorLog = running.ErrorLog,
            Debug = running.Debug,
            Metrics = running.Metrics,
            Workers = running.Workers,
            Source = read.Source,
        };
        return (options, restart.Changed);
    }
}
