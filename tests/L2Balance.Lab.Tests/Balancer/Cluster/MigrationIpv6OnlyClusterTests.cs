using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>The migration cluster whose l2bal serves the IPv6 VIP alone, with <c>--migrate</c> on each node's IPv6 address.</summary>
public sealed class MigrationIpv6OnlyClusterFixture : MigrationClusterFixture
{
    public MigrationIpv6OnlyClusterFixture() => Ipv6Only = true;

    protected override string[] NodeBalancerArgs(int k) => ["--migrate", ClusterLab.NodeAddress6(k).ToString()];
}

[CollectionDefinition(Name)]
public sealed class MigrationIpv6OnlyClusterGroup : ICollectionFixture<MigrationIpv6OnlyClusterFixture>
{
    public const string Name = "migration-ipv6-only-cluster";
}

/// <summary>
/// <c>--migrate</c> with an IPv6 VIP alone (docs/design.md#an-ipv6-vip-alone): no ip table, the ip6 table's moved-flow
/// sets, the channel between the nodes' IPv6 addresses; the IPv6 sessions of the dual-stack test move the same way.
/// </summary>
[Collection(MigrationIpv6OnlyClusterGroup.Name)]
public sealed class MigrationIpv6OnlyClusterTests(MigrationIpv6OnlyClusterFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    public Task InitializeAsync() => fixture.RestoreAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [SkippableFact(typeof(LabUnavailableException))]
    public Task DrainMigrate_Ipv6SessionsWithTheIpv6VipAlone_ContinueOnTheirBucketsNewOwnersEveryByteOnce() =>
        new MigrationClusterTests(fixture, output).DrainMigrateSessionsAsync(sessions6: 40, sessions4: 0);
}
