using System.Globalization;
using System.Runtime.InteropServices;
using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli;

/// <summary>
/// <c>l2lab cluster-up [--nodes N] [--clients C] [--hold SECONDS]</c>: builds the cluster lab,
/// prints its topology and namespace names, and keeps it until Enter, SIGINT/SIGTERM or the hold
/// time, then tears it down. A developer tool for poking at the lab with <c>ip netns exec</c>.
/// </summary>
internal static class ClusterCommands
{
    public const string Usage = "       l2lab cluster-up [--nodes N] [--clients C] [--hold SECONDS]\n" +
                                "                          build the cluster lab, print it, keep it until Enter/Ctrl+C/hold";

    public static async Task<int> UpAsync(IReadOnlyList<string> args)
    {
        int nodes = 3, clients = 60;
        TimeSpan? hold = null;
        for (var i = 0; i < args.Count; i++)
        {
            var value = i + 1 < args.Count ? args[i + 1] : null;
            switch (args[i])
            {
                case "--nodes" when int.TryParse(value, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= ClusterLab.MaxNodes:
                    nodes = n;
                    break;
                case "--clients" when int.TryParse(value, CultureInfo.InvariantCulture, out var c) && c is >= 1 and <= ClusterLab.MaxClientAddresses:
                    clients = c;
                    break;
                case "--hold" when double.TryParse(value, CultureInfo.InvariantCulture, out var s) && s > 0:
                    hold = TimeSpan.FromSeconds(s);
                    break;
                case "--help" or "-h":
                    Console.WriteLine("usage:" + Usage[6..]);
                    return 0;
                default:
                    Console.Error.WriteLine($"l2lab cluster-up: bad option '{args[i]}' (nodes 1-{ClusterLab.MaxNodes}, clients 1-{ClusterLab.MaxClientAddresses}, hold > 0 s)");
                    return 2;
            }

            i++;
        }

        Console.WriteLine($"building cluster lab: {nodes} nodes, {clients} client addresses");
        await using var lab = await ClusterLab.CreateAsync(nodes, clients).ConfigureAwait(false);
        Console.WriteLine(lab.DescribeTopology());
        Console.WriteLine();
        Console.WriteLine($"namespaces: {string.Join(' ', lab.Network.Hosts.Select(h => h.Namespace))}");
        Console.WriteLine($"try: ip netns exec {lab.Nodes[0].Namespace} bash   |   ip -n {lab.Switch.Namespace} link show master br0");
        Console.WriteLine(hold is { } h
            ? $"holding for {h.TotalSeconds:0.#} s (or Enter / Ctrl+C), then tearing down"
            : "press Enter or Ctrl+C to tear down");

        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // Ctrl+C through Console.CancelKeyPress, like LabNetwork's own teardown handler: one event,
        // handlers run in order (the lab's teardown first), and cancelling keeps the process alive
        // until that teardown has finished. A separate SIGINT registration races with it.
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            done.TrySetResult();
        };
        Console.CancelKeyPress += onCancel;
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        _ = Task.Run(() =>
        {
            // EOF on stdin (no terminal) is not a request to stop: only a line is.
            if (Console.In.ReadLine() is not null)
            {
                done.TrySetResult();
            }
        });
        var waits = new List<Task> { done.Task };
        if (hold is { } holdTime)
        {
            waits.Add(Task.Delay(holdTime));
        }

        await Task.WhenAny(waits).ConfigureAwait(false);
        Console.CancelKeyPress -= onCancel;
        Console.WriteLine("tearing down");
        return 0;

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            done.TrySetResult();
        }
    }
}
