using System.Runtime.InteropServices;
using System.Security.Cryptography;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Control;
using L2Balance.Balancer.Daemon;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Kernel;
using L2Balance.Common.CommandLine;

namespace L2Balance.Balancer;

/// <summary>The l2bal command: run the daemon, or talk to the one running on this node.</summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        switch (BalancerCommandLine.Parse(args))
        {
            case BalancerCommand.Output output:
                Console.Out.Write(output.Text);
                return ExitCodes.Ok;
            case BalancerCommand.Invalid invalid:
                return ProgramCommandLine.Report(Console.Error, BalancerCommandLine.Program, invalid.Messages, invalid.ExitCode, invalid.SeeHelp);
            case BalancerCommand.CheckConfig check:
                return CheckConfig(check);
            case BalancerCommand.Slice slice:
                Console.Out.Write(PortSlice.Describe(slice.NodeId, slice.NodeCount));
                return ExitCodes.Ok;
            case BalancerCommand.GenKey genkey:
                return GenKey(genkey);
            case BalancerCommand.Control control:
                return await ControlAsync(control).ConfigureAwait(false);
            case BalancerCommand.Run run:
                return await RunAsync(run.Options, args).ConfigureAwait(false);
            default:
                return ExitCodes.Usage;
        }
    }

    /// <summary>Every error on a line of its own (FILE:LINE:COLUMN first for a file's), as compilers print them; the key file is read as <c>run</c> reads it.</summary>
    private static int CheckConfig(BalancerCommand.CheckConfig check)
    {
        foreach (var error in check.Errors)
        {
            Console.Error.WriteLine(error);
        }
        if (check.Options is null)
        {
            return ExitCodes.Config;
        }
        if (check.Options.Unserved is { } unserved)
        {
            Console.Error.WriteLine(unserved);
            return ExitCodes.Config;
        }
        if (LoadKey(check.Options.KeyFile) is not { } key)
        {
            return ExitCodes.Config;
        }
        CryptographicOperations.ZeroMemory(key);
        if (check.Options.PreviousKeyFile is { } previousFile)
        {
            if (LoadKey(previousFile) is not { } previous)
            {
                return ExitCodes.Config;
            }
            CryptographicOperations.ZeroMemory(previous);
        }
        Console.Out.WriteLine("configuration OK");
        return ExitCodes.Ok;
    }

    private static async Task<int> ControlAsync(BalancerCommand.Control control)
    {
        try
        {
            var answer = await ControlServer.SendAsync(control.ControlPath, control.Request, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            Console.Out.Write(answer);
            return answer.StartsWith("error:", StringComparison.Ordinal) ? ExitCodes.Failure : ExitCodes.Ok;
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or OperationCanceledException)
        {
            Console.Error.WriteLine($"l2bal: no daemon answers on {ControlServer.Describe(control.ControlPath)} in this network namespace ({e.Message})");
            return ExitCodes.Failure;
        }
        catch (UnauthorizedAccessException e)
        {
            Console.Error.WriteLine($"l2bal: {e.Message}");
            return ExitCodes.Failure;
        }
    }

    private static async Task<int> RunAsync(BalancerOptions options, string[] args)
    {
        var log = new BalancerLog(Console.Error);
        if (options.Unserved is { } unserved)
        {
            Console.Error.WriteLine(unserved);
            return ExitCodes.Config;
        }
        if (LoadKey(options.KeyFile) is not { } key)
        {
            return ExitCodes.Config;
        }
        // The key being replaced during a key change, read as the current one is (docs/design.md#key-rollover).
        byte[]? previousKey = null;
        if (options.PreviousKeyFile is { } previousFile && (previousKey = LoadKey(previousFile)) is null)
        {
            CryptographicOperations.ZeroMemory(key);
            return ExitCodes.Config;
        }
        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        using var filter = new NftablesFilter();
        using var daemon = new BalancerDaemon(options, key, log, filter, previousKey);
        // systemctl reload: the same command line read again (its --config file with it), off the signal thread.
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; _ = Task.Run(() => daemon.Reload(BalancerCommandLine.Parse(args))); });
        try
        {
            return await daemon.RunAsync(stop.Token).ConfigureAwait(false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            if (previousKey is not null)
            {
                CryptographicOperations.ZeroMemory(previousKey);
            }
        }
    }

    /// <summary>Reads the cluster key as <see cref="ClusterKeyFile.Load"/> does, reporting why it cannot.</summary>
    private static byte[]? LoadKey(string path)
    {
        var key = ClusterKeyFile.Load(path, out var error);
        if (error is not null)
        {
            Console.Error.WriteLine($"l2bal: {error}");
        }
        return key;
    }

    /// <summary><c>l2bal genkey</c>: the key on standard output, or written to a file in one step.</summary>
    private static int GenKey(BalancerCommand.GenKey genkey)
    {
        if (genkey.OutputFile is null)
        {
            Console.Out.Write(ClusterKeyFile.NewKeyText());
            return ExitCodes.Ok;
        }
        if (ClusterKeyFile.Create(genkey.OutputFile, genkey.Force, out var error) is not { } done)
        {
            Console.Error.WriteLine($"l2bal: {error}");
            return ExitCodes.Failure;
        }
        Console.Out.WriteLine(done);
        return ExitCodes.Ok;
    }
}
