using System.Buffers.Binary;
using System.Text.Json;
using L2Balance.Balancer.Cluster;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>
/// Issue 17's weights on the three-node segment (docs/design.md#weights): node 2 at weight 200,
/// nodes 1 and 3 at 100. Node 2 restarts with <c>--weight 200</c>; the others learn it from its
/// adverts and every node computes the same weighted table.
/// </summary>
[Collection(BalancerClusterGroup.Name)]
public sealed class WeightLabTests(BalancerClusterFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan RunBound = TimeSpan.FromSeconds(60);
    private static readonly int[] Weights = [100, 200, 100];
    private ClusterLab Lab => fixture.Lab;

    public Task InitializeAsync() => fixture.RestoreAsync();

    // Back to equal weights for the next test of the collection.
    public Task DisposeAsync() => fixture.RestoreAsync();

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Weights100200100_ConnectionsFromSixtyAddresses_FollowTheWeightsAndTheNamedOwner()
    {
        await fixture.RestartBalancerAsync(2, "--weight", "200");
        var buckets = (await fixture.StatusAsync(1)).Buckets;
        var table = Ownership.Compute(MembershipView.AllActive(3, buckets, new WeightVector([.. Weights.Select(w => (ushort)w)])));
        await fixture.WaitForStatusAsync([1, 2, 3], s => s.Values.All(x => HoldsWeightedShare(x, table)), "every node holds its weighted share");

        // The mirror (BucketHash, seed = the VIP as a number, the weighted table) agrees with `l2bal owner`.
        var seed = BinaryPrimitives.ReadUInt32BigEndian(ClusterLab.VipAddress.GetAddressBytes());
        var owners = await fixture.OwnersAsync();
        var mirror = Lab.ClientAddresses.ToDictionary(a => a.ToString(), a => table.Owner(BucketHash.Bucket(a, buckets, seed)));
        Assert.Equal(mirror.OrderBy(p => p.Key), owners.OrderBy(p => p.Key));

        using var detector = await DuplicateAnswerDetector.StartAsync(Lab);
        var results = await new TrafficGenerator(Lab.Client, fixture.Traffic(TimeSpan.FromSeconds(5))).RunAsync().WithTimeout(RunBound);
        var seen = await detector.StopAsync();
        var why = $"{results.Summary()}\n{seen.Summary()}\n{fixture.Describe()}";
        output.WriteLine($"{results.Summary()}\n{seen.Summary()}");

        Assert.True(results.Connects.Count >= 3 * BalancerClusterFixtureBase.ClientCount, why);
        LabAssert.All(results.Connects, c => c.Outcome == TrafficOutcome.Ok && c.Node == owners[c.Source], c => $"{c} (owner {owners[c.Source]})\n{why}");
        seen.AssertSingleAnswers(fixture.Describe);

        // The bound: which node owns an address is a draw of the hash, p = w/W, one per address;
        // connections from one address all go to one node, so the sample is the 60 addresses, not
        // the connections: the share of each node lies within 3σ = 3·√(p(1−p)/60) of p
        // (±19.4 points for node 2's p = 1/2, ±16.8 for p = 1/4), which it fails with probability 0.003.
        int total = results.Connects.Count, addresses = Lab.ClientAddresses.Count;
        for (var k = 1; k <= 3; k++)
        {
            double p = (double)Weights[k - 1] / Weights.Sum();
            double share = (double)results.Connects.Count(c => c.Node == k) / total;
            double bound = 3 * Math.Sqrt(p * (1 - p) / addresses);
            output.WriteLine($"node {k}: weight {Weights[k - 1]}, {share:P1} of {total} connections (weight share {p:P1}, bound ±{bound:P1}); {mirror.Values.Count(o => o == k)} of {addresses} addresses");
            Assert.InRange(share, p - bound, p + bound);
        }
    }

    private static bool HoldsWeightedShare(BalancerStatus s, OwnershipTable table)
    {
        using var json = JsonDocument.Parse(s.Json);
        var weights = json.RootElement.GetProperty("weights");
        return s.State == "active" && s.Healthy && s.Held == table.CountOf(s.NodeId) && s.Owners.GetValueOrDefault("none") == 0
            && Enumerable.Range(1, 3).All(k => s.OwnedBy(k) == table.CountOf(k) && weights.GetProperty($"{k}").GetInt32() == Weights[k - 1])
            && json.RootElement.GetProperty("weight").GetInt32() == Weights[s.NodeId - 1];
    }
}
