using System.Globalization;
using System.Runtime.InteropServices;
using L2Balance.Common.CommandLine;
using L2Balance.Common.Linux;
using L2Balance.Common.Metrics;
using L2Balance.Proxy.Auth;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Migration;
using L2Balance.Proxy.Server;
using L2Balance.Proxy.Workers;

namespace L2Balance.Proxy;

/// <summary>The l2proxy command: run the proxy, check a configuration, or manage the users file.</summary>
internal static class Program
{
    /// <summary>Exit codes follow sysexits(3): usage and configuration errors are told apart from runtime failures.</summary>
    private const int ExitOk = ExitCodes.Ok;
    private const int ExitFailure = ExitCodes.Failure;
    private const int ExitUsage = ExitCodes.Usage;
    private const int ExitConfig = ExitCodes.Config;

    /// <summary>
    /// Runs socket continuations on the epoll thread instead of queueing them to the thread pool
    /// (read by System.Net.Sockets at its first use, hence set before any socket exists). The proxy
    /// never blocks in a continuation (password hashing goes to the pool), so every hop saves a
    /// thread-pool dispatch (UDP round trips before and after: docs/benchmarks.md#udp-relay).
    /// An explicit value in the environment wins.
    /// </summary>
    private const string InlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    public static async Task<int> Main(string[] args)
    {
        if (Environment.GetEnvironmentVariable(InlineCompletions) is null)
        {
            Environment.SetEnvironmentVariable(InlineCompletions, "1");
        }

        // The hidden "--worker I" (always last, added by the supervisor) makes this process a worker.
        int? worker = null;
        if (args.Length >= 2 && args[^2] == WorkerSupervisor.WorkerFlag && int.TryParse(args[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            worker = index;
            args = args[..^2];
        }

        switch (CommandLine.Parse(args))
        {
            case CommandLineResult.Output output:
                Console.Out.Write(output.Text);
                return ExitOk;
            case CommandLineResult.Invalid invalid:
                return ProgramCommandLine.Report(Console.Error, CommandLine.Program, invalid.Messages, invalid.ExitCode, invalid.SeeHelp);
            case CommandLineResult.CheckConfig check:
                return CheckConfig(check.Path);
            case CommandLineResult.Passwd passwd:
                return SetPassword(passwd.UsersFile, passwd.User);
            case CommandLineResult.Run run:
                return await RunAsync(run.Options, run.Warnings, args, worker).ConfigureAwait(false);
            default:
                return ExitUsage;
        }
    }

    private static async Task<int> SuperviseAsync(int workers, string[] args, ProxyLog log, string? migrateControlName)
    {
        var stop = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult("SIGTERM"); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult("SIGINT"); });
        using var notify = SystemdNotify.FromEnvironment();
        using var readiness = notify is null ? null : new WorkerReadiness(workers);
        // Sessions live in the workers: the supervisor forwards the migration control requests to each and merges the answers.
        var refusedForWorkers = new ProxyCounters();
        using var forwarder = new WorkerMigrationForwarder(workers, log, refusedForWorkers.MigrationRefused);
        var supervisor = new WorkerSupervisor(workers, args, log) { WorkersNotifySocket = readiness?.Address, Migration = forwarder };
        var migrateControl = MigrationControlServer.TryStart(migrateControlName, forwarder.AnswerAsync, log);
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
        {
            c.Cancel = true;
            notify?.Reloading();
            supervisor.Reload();
            notify?.Ready();
        });
        _ = readiness?.AllReady.ContinueWith(_ => notify!.Ready(), TaskScheduler.Default);
        _ = stop.Task.ContinueWith(_ => notify?.Stopping(), TaskScheduler.Default);
        await supervisor.RunAsync(stop.Task).ConfigureAwait(false);
        if (migrateControl is not null)
        {
            await migrateControl.DisposeAsync().ConfigureAwait(false);
        }
        return ExitOk;
    }

    private static int CheckConfig(string path)
    {
        var result = ConfigLoader.Load(path);
        foreach (var warning in result.Warnings)
        {
            Console.Error.WriteLine($"{path}: warning: {warning}");
        }
        foreach (var error in result.Errors)
        {
            Console.Error.WriteLine(error.ToString());
        }
        if (result.Options is null)
        {
            return ExitConfig;
        }
        if (result.Options.UsersFile is { } usersFile && LoadUsers(usersFile) is null)
        {
            return ExitConfig;
        }
        Console.Out.WriteLine("configuration OK");
        return ExitOk;
    }

    private static int SetPassword(string usersFile, string user)
    {
        // The password comes from standard input (one line), never from the command line,
        // where every local user could read it in /proc.
        string? password;
        if (!Console.IsInputRedirected)
        {
            password = ReadHidden($"password for {user}: ");
            if (ReadHidden("again: ") != password)
            {
                Console.Error.WriteLine("l2proxy: passwords do not match; nothing changed");
                return ExitFailure;
            }
        }
        else
        {
            password = Console.In.ReadLine();
        }
        if (string.IsNullOrEmpty(password))
        {
            Console.Error.WriteLine("l2proxy: no password given on standard input; nothing changed");
            return ExitUsage;
        }
        try
        {
            UserStore.SetPassword(usersFile, user, password);
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            Console.Error.WriteLine($"l2proxy: {usersFile}: {e.Message}");
            return ExitFailure;
        }
        Console.Out.WriteLine($"password of '{user}' set in {usersFile}");
        return ExitOk;
    }

    private static string ReadHidden(string prompt)
    {
        Console.Error.Write(prompt);
        var text = new System.Text.StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter)
            {
                Console.Error.WriteLine();
                return text.ToString();
            }
            if (key.Key == ConsoleKey.Backspace)
            {
                if (text.Length > 0)
                {
                    text.Length--;
                }
            }
            else
            {
                text.Append(key.KeyChar);
            }
        }
    }

    private static UserStore? LoadUsers(string path)
    {
        try
        {
            return UserStore.Load(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            Console.Error.WriteLine($"l2proxy: users file {path}: {e.Message}");
            return null;
        }
    }

    private static async Task<int> RunAsync(ProxyOptions options, IReadOnlyList<string> warnings, string[] args, int? worker)
    {
        UserStore? users = null;
        if (options.UsersFile is { } usersFile && (users = LoadUsers(usersFile)) is null)
        {
            return ExitConfig;
        }
        if (GssapiKeytabs.Check(options) is { } keytabError)
        {
            Console.Error.WriteLine($"l2proxy: {keytabError}");
            return ExitConfig;
        }
        LogWriter writer;
        try
        {
            writer = new LogWriter(options.LogOutput, options.ErrorLog);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"l2proxy: cannot open log output: {e.Message}");
            return ExitConfig;
        }
        await using (writer.ConfigureAwait(false))
        {
            var log = new ProxyLog(writer, options.Debug);
            foreach (var warning in warnings)
            {
                log.ConfigWarning(warning);
            }
            if (options.Workers > 1 && worker is null)
            {
                return await SuperviseAsync(options.Workers, args, log, options.MigrateControl).ConfigureAwait(false);
            }

            if (worker is { } i && options.Metrics is { } shared)
            {
                // One metrics endpoint per worker: worker i on the configured port + i.
                options = options with { Metrics = new System.Net.IPEndPoint(shared.Address, shared.Port + i) };
            }

            var server = new ProxyServer(options, log, users) { ReusePort = worker is not null };
            await using (server.ConfigureAwait(false))
            {
                MetricsEndpoint? metrics = null;
                // Workers share the channel port (SO_REUSEPORT): the kernel spreads peers' channels over them.
                var migration = new MigrationService(server, log) { ReusePort = worker is not null };
                await using var migrationRunning = migration.ConfigureAwait(false);
                // A worker is asked by its supervisor, over the channel it inherited; a single process serves the socket itself.
                var migrateControl = worker is null ? MigrationControlServer.TryStart(options.MigrateControl, migration.AnswerAsync, log) : null;
                await using var migrateControlRunning = migrateControl is null ? null : (IAsyncDisposable?)migrateControl;
                using var supervisorLink = worker is null ? null : WorkerChannel.FromEnvironment();
                _ = supervisorLink is null ? Task.CompletedTask : WorkerChannel.ServeAsync(supervisorLink, migration.AnswerAsync, log, CancellationToken.None);
                try
                {
                    server.Bind();
                    // Bound before privileges are dropped, like the SOCKS listeners.
                    metrics = options.Metrics is { } metricsAt ? ProxyMetrics.Open(metricsAt, server.Counters, log) : null;
                    Privileges.DropTo(options.UserUnprivileged, log);
                }
                catch (InvalidOperationException e)
                {
                    log.ListenFailed(options.Source, e.Message);
                    if (metrics is not null)
                    {
                        await metrics.DisposeAsync().ConfigureAwait(false);
                    }
                    return ExitFailure;
                }
                try
                {
                    var stop = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
                    using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult("SIGTERM"); });
                    using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult("SIGINT"); });
                    using var orphanWatch = worker is null ? null : WorkerSupervisor.WatchSupervisor(() => stop.TrySetResult("supervisor gone"));
                    using var notify = worker is null ? SystemdNotify.FromEnvironment() : null;
                    var reloader = new ConfigReloader(server, args, log, notify);
                    using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; _ = Task.Run(reloader.Reload); });
                    server.Start();
                    if (worker is { } index)
                    {
                        WorkerReadiness.ReportReady(index);
                    }
                    notify?.Ready();
                    var reason = await stop.Task.ConfigureAwait(false);
                    notify?.Stopping();
                    log.Stopping(reason, server.Counters.SessionsActive);
                }
                finally
                {
                    if (metrics is not null)
                    {
                        await metrics.DisposeAsync().ConfigureAwait(false);
                    }
                }
            }
        }
        return ExitOk;
    }
}
