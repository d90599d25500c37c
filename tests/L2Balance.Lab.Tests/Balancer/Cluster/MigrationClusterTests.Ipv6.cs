using System.Globalization;
using L2Balance.Lab.Cluster;
using L2Balance.Lab.Tests.Proxy;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>IPv6 sessions move as IPv4 ones do, in the same drain (docs/design.md#migration-filter, the ip6 table's moved-flow sets).</summary>
public partial class MigrationClusterTests
{
    /// <summary>IPv6 CONNECT sessions of the drained node's IPv6 clients, and IPv4 ones beside them.</summary>
    private const int Sessions6 = 40, Sessions4 = 20;

    [SkippableFact(typeof(LabUnavailableException))]
    public Task DrainMigrate_Ipv6AndIpv4SessionsOfTheDrainedNode_ContinueOnTheirBucketsNewOwnersEveryByteOnce() => DrainMigrateSessionsAsync(Sessions6, Sessions4);

    /// <summary>
    /// <paramref name="sessions6"/> IPv6 and <paramref name="sessions4"/> IPv4 checked CONNECT sessions of the drained node's clients,
    /// <c>drain --migrate</c>: all move, every byte once, the new owners' ip6 tables accept the IPv6 flows by the socket mark.
    /// Also run on a cluster whose l2bal serves the IPv6 VIP alone (<see cref="MigrationIpv6OnlyClusterTests"/>).
    /// </summary>
    internal async Task DrainMigrateSessionsAsync(int sessions6, int sessions4)
    {
        var sources6 = await fixture.SourcesOfAsync(Drained, ipv6: true);
        var sources4 = sessions4 > 0 ? await fixture.SourcesOfAsync(Drained) : [];
        using var listener6 = fixture.ListenOnTarget(sessions6, ipv6: true);
        using var listener4 = sessions4 > 0 ? fixture.ListenOnTarget(sessions4) : null;
        using var stop = new CancellationTokenSource();
        var sessions = new List<ClusterSession>();
        try
        {
            // Source ports 20000.. and 21000..: no other test of the collection uses them (a 5-tuple is never reused).
            await fixture.OpenSessionsAsync(sessions, sources6, sessions6, listener6, 20000, stop.Token, bulk: 1);
            if (listener4 is not null)
            {
                await fixture.OpenSessionsAsync(sessions, sources4, sessions4, listener4, 21000, stop.Token);
            }
            await Task.Delay(TimeSpan.FromSeconds(1));
            var listed = await fixture.ListAsync(Drained);
            Assert.True(listed.Count == sessions6 + sessions4 && listed.All(s => s.State == "movable")
                && listed.Count(s => s.Client.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6) == sessions6,
                $"node 2 lists {listed.Count} of {sessions6 + sessions4}: {string.Join(", ", listed.Select(s => $"{s.Client} {s.State}"))}\n{fixture.Describe()}");
            var acceptedBefore = await KernelIpv6Async("acceptedMovedIn");

            var cpu = await DrainMigrateEveryOneMovesAsync(sessions, stop, [.. sources6, .. sources4], $"{sessions6} IPv6 and {sessions4} IPv4 sessions");

            // The new owners took the IPv6 flows by their restored sockets' mark in the ip6 table (kernel.ipv6.acceptedMovedIn).
            var acceptedAfter = await KernelIpv6Async("acceptedMovedIn");
            Assert.True(acceptedAfter[0] + acceptedAfter[2] > acceptedBefore[0] + acceptedBefore[2],
                $"kernel.ipv6.acceptedMovedIn of nodes 1, 3: {acceptedBefore[0]}, {acceptedBefore[2]} -> {acceptedAfter[0]}, {acceptedAfter[2]}\n{fixture.Describe()}");
            output.WriteLine($"CPU of l2bal and l2proxy during the drain, ticks of 10 ms, nodes 1, 2, 3: {string.Join(", ", cpu)}");
            output.WriteLine(MigrationPrimitiveTests.Figures("pause seen by the ends (longest gap between arrivals)", [.. sessions.Select(s => s.Session.LongestPause)]));
        }
        finally
        {
            await stop.CancelAsync();
            sessions.ForEach(s => s.Session.Dispose());
        }
    }

    /// <summary>A field of <c>kernel.ipv6</c> in every node's <c>status --json</c> (index = node - 1).</summary>
    private async Task<long[]> KernelIpv6Async(string name)
    {
        var values = new long[3];
        for (var k = 1; k <= 3; k++)
        {
            values[k - 1] = (await fixture.StatusAsync(k)).Kernel6(name);
        }
        return values;
    }
}
