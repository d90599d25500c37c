using System.Net;
using L2Balance.Balancer.Migration;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Migration;

public class MigrationPlannerTests
{
    private static readonly Dictionary<int, NodeAddresses> Peers = new()
    {
        [2] = new NodeAddresses(IPAddress.Parse("198.18.0.2"), null, 1081),
        [3] = new NodeAddresses(IPAddress.Parse("198.18.0.3"), IPAddress.Parse("fdc6:1200::3"), 1090),
    };

    /// <summary>Owner by the client's last octet: 1x → 1 (self), 2x → 2, 3x → 3, 4x → 4 (no address), 0 → none.</summary>
    private static int OwnerOf(ProxySession s) => s.Client.Address.GetAddressBytes()[3] / 10;

    [Fact]
    public void Plan_Sessions_GroupByOwnerInOrderToEachOwnersAddress()
    {
        var sessions = new[] { MigrationTestData.Session(1, 31), MigrationTestData.Session(2, 21), MigrationTestData.Session(3, 32), MigrationTestData.Session(4, 22) };

        var plan = MigrationPlanner.Plan(sessions, self: 1, OwnerOf, Peers);

        Assert.Equal([2, 3], plan.Batches.Select(b => b.Owner));
        Assert.Equal(["s2", "s4"], plan.Batches[0].Sessions.Select(s => s.Id));
        Assert.Equal(["s1", "s3"], plan.Batches[1].Sessions.Select(s => s.Id));
        Assert.Equal(IPEndPoint.Parse("198.18.0.2:1081"), plan.Batches[0].Peer);
        Assert.Equal(IPEndPoint.Parse("198.18.0.3:1090"), plan.Batches[1].Peer);
        Assert.Equal(4, plan.ToMove);
        Assert.Empty(plan.Refused);
    }

    [Fact]
    public void Plan_ManySessionsPerOwner_BatchesOfAtMostTheLimitOwnersAlternating()
    {
        // 150 sessions for owner 2 (clients .21), 70 for owner 3 (clients .31), in list order.
        var sessions = Enumerable.Range(1, 220).Select(i => MigrationTestData.Session(i, i <= 150 ? 21 : 31)).ToArray();

        var plan = MigrationPlanner.Plan(sessions, self: 1, OwnerOf, Peers);

        Assert.Equal(16, MigrationPlanner.BatchLimit);
        Assert.Equal([(2, 16), (3, 16), (2, 16), (3, 16), (2, 16), (3, 16), (2, 16), (3, 16), (2, 16), (3, 6), (2, 16), (2, 16), (2, 16), (2, 16), (2, 6)],
            plan.Batches.Select(b => (b.Owner, b.Sessions.Count)));
        Assert.Equal(sessions.Select(s => s.Id), plan.Batches.OrderBy(b => b.Owner).SelectMany(b => b.Sessions).Select(s => s.Id));
        Assert.Equal(220, plan.ToMove);
    }

    [Fact]
    public void Plan_ProxyRefusalsAndOwnersWithoutAddress_AreRefusedWithTheirReasons()
    {
        var sessions = new[]
        {
            MigrationTestData.Session(1, 21, stays: "gssapi-protected"),
            MigrationTestData.Session(2, 41),
            MigrationTestData.Session(3, 5),
            MigrationTestData.Session(4, 22),
        };

        var plan = MigrationPlanner.Plan(sessions, self: 1, OwnerOf, Peers);

        Assert.Equal([("s1", "gssapi-protected"), ("s2", "peer-unreachable"), ("s3", "peer-unreachable")], plan.Refused.Select(r => (r.Session.Id, r.Reason)));
        Assert.Equal(["s4"], plan.Batches.Single().Sessions.Select(s => s.Id));
    }

    [Fact]
    public void Plan_SessionsThisNodeOwns_StayUncounted()
    {
        var plan = MigrationPlanner.Plan([MigrationTestData.Session(1, 11), MigrationTestData.Session(2, 12)], self: 1, OwnerOf, Peers);

        Assert.Empty(plan.Batches);
        Assert.Empty(plan.Refused);
        Assert.Equal(2, plan.OwnedHere);
    }

    [Fact]
    public void Plan_SessionOnTheIpv6Vip_GoesToItsOwnerLikeAnIpv4One()
    {
        var v4 = MigrationTestData.Session(1, 21);
        var v6 = MigrationTestData.Line("session s2 connect [fdc6:1200:64::21]:40002 [fdc6:1200:10::a]:1080 [fdc6:1200:10::a]:33002 [fdc6:1200:20::7]:443 0 movable");

        var plan = MigrationPlanner.Plan([v4, v6], self: 1, s => s.Id == "s2" ? 3 : OwnerOf(s), Peers, _ => true);

        Assert.Empty(plan.Refused);
        Assert.Equal([(2, "s1"), (3, "s2")], plan.Batches.SelectMany(b => b.Sessions.Select(s => (b.Owner, s.Id))));
    }

    [Fact]
    public void Plan_SessionOfAFamilyWithoutItsVip_IsRefusedWithoutAskingItsOwner()
    {
        var v4 = MigrationTestData.Session(1, 21);
        var v6 = MigrationTestData.Line("session s2 connect [fdc6:1200:64::21]:40002 [fdc6:1200:10::a]:1080 [fdc6:1200:10::a]:33002 [fdc6:1200:20::7]:443 0 movable");

        var plan = MigrationPlanner.Plan([v4, v6], self: 1, s => s.Id == "s2" ? throw new InvalidOperationException("asked") : OwnerOf(s), Peers,
            family => family == System.Net.Sockets.AddressFamily.InterNetwork);

        Assert.Equal([("s2", "family-not-served")], plan.Refused.Select(r => (r.Session.Id, r.Reason)));
        Assert.Equal(["s1"], plan.Batches.Single().Sessions.Select(s => s.Id));
    }
}
