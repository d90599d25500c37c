using L2Balance.Common.Linux;
using L2Balance.Proxy.Auth;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Diagnostics;

namespace L2Balance.Proxy.Server;

/// <summary>
/// SIGHUP (<c>systemctl reload l2proxy</c>), as Dante: the same command line is read again, so
/// sockd.conf and the users file are re-read; new sessions serve with the result, open ones keep
/// theirs. A configuration with errors changes nothing and is logged with every error; settings
/// that need a restart keep their running value and are named (<see cref="ReloadPlan"/>). Around
/// it systemd hears RELOADING=1 and READY=1 (Type=notify-reload).
/// </summary>
internal sealed class ConfigReloader(ProxyServer server, IReadOnlyList<string> args, ProxyLog log, SystemdNotify? notify)
{
    private readonly Lock _lock = new();

    /// <summary>Re-reads and applies; true when the new configuration serves.</summary>
    public bool Reload()
    {
        lock (_lock)
        {
            notify?.Reloading();
            try
            {
                return Apply();
            }
            finally
            {
                notify?.Ready();
            }
        }
    }

    private bool Apply()
    {
        var source = server.Options.Source;
        var parsed = CommandLine.Parse(args);
        if (parsed is not CommandLineResult.Run run)
        {
            var errors = parsed is CommandLineResult.Invalid invalid ? invalid.Messages : ["the command line no longer runs the proxy"];
            log.ConfigReloadFailed(source, string.Join("; ", errors));
            return false;
        }
        UserStore? users = null;
        if (run.Options.UsersFile is { } usersFile)
        {
            try
            {
                users = UserStore.Load(usersFile);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
            {
                log.ConfigReloadFailed(source, $"users file {usersFile}: {e.Message}");
                return false;
            }
        }
        if (Auth.GssapiKeytabs.Check(run.Options) is { } keytabError)
        {
            log.ConfigReloadFailed(source, keytabError);
            return false;
        }
        var (options, needRestart) = ReloadPlan.Plan(server.Options, run.Options);
        foreach (var warning in run.Warnings)
        {
            log.ConfigWarning(warning);
        }
        if (needRestart.Count > 0)
        {
            log.ConfigReloadKept(string.Join(", ", needRestart));
        }
        server.Reload(new ServingConfig(options, users));
        log.ConfigReloaded(options.Source, options.ClientRules.Count, options.SocksRules.Count);
        return true;
    }
}
