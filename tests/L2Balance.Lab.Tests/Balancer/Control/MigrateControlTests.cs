using System.Text.Json;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Control;

/// <summary>
/// Running daemons with <c>--migrate</c> (docs/design.md#node-addresses, #migration-orchestration):
/// each shows its peer's advertised address, and <c>l2bal migrate</c> without an l2proxy is an
/// error that names it and is counted. The moves themselves are the end-to-end test of both halves.
/// </summary>
public sealed class MigrateControlTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Migrate_TwoNodesWithoutL2proxy_ShowEachOthersAddressAndCountTheMissingProxy()
    {
        await using var lab = await ClusterLab.CreateAsync(nodes: 2, clientAddresses: 1, startTargetServers: false).WithTimeout(Deadline);
        lab.StartBalancer(1, "--migrate", ClusterLab.NodeAddress(1).ToString());
        lab.StartBalancer(2, "--migrate", $"{ClusterLab.NodeAddress(2)}:2000");

        var seen = await MigrationsWhenAsync(lab, 1, m => m.GetProperty("peerAddresses").TryGetProperty("2", out _));
        var answer = await lab.RunOnNode(1, ClusterBinaries.L2Bal, ["migrate"]).WithTimeout(Deadline);
        var after = await MigrationsWhenAsync(lab, 1, m => m.GetProperty("proxyErrors").GetInt64() > 0);

        Assert.Equal("198.18.0.2:2000", seen.GetProperty("peerAddresses").GetProperty("2").GetString());
        Assert.Equal("198.18.0.1:1081", seen.GetProperty("nodeAddress").GetString());
        Assert.False(answer.Succeeded, answer.ToString());
        Assert.Contains("l2proxy", answer.StdOut + answer.StdErr, StringComparison.Ordinal);
        Assert.Equal(0, after.GetProperty("done").GetInt64());
        Assert.Equal(0, after.GetProperty("inProgress").GetInt64());
    }

    /// <summary>Node k's <c>migrations</c> once <paramref name="condition"/> holds (the control socket may not exist right after the start).</summary>
    internal static async Task<JsonElement> MigrationsWhenAsync(ClusterLab lab, int k, Func<JsonElement, bool> condition)
    {
        var deadline = DateTime.UtcNow + Deadline;
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            var result = await lab.RunOnNode(k, ClusterBinaries.L2Bal, ["status", "--json"]).WithTimeout(Deadline);
            if (result.Succeeded)
            {
                using var doc = JsonDocument.Parse(result.StdOut);
                var migrations = doc.RootElement.GetProperty("migrations").Clone();
                if (condition(migrations))
                {
                    return migrations;
                }
                last = result.StdOut;
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"node {k}'s migrations never met the condition:\n{last}\n{lab.Describe()}");
    }
}
