using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>The migration cluster with <c>--workers 2</c> on every l2proxy.</summary>
public sealed class MigrationWorkersClusterFixture : MigrationClusterFixture
{
    public override int ProxyWorkers => 2;
}

[CollectionDefinition(Name)]
public sealed class MigrationWorkersClusterGroup : ICollectionFixture<MigrationWorkersClusterFixture>
{
    public const string Name = "migration-workers-cluster";
}

/// <summary>
/// Every test of <see cref="MigrationClusterTests"/> with two workers per l2proxy: the supervisor
/// forwards l2bal's requests to both over their channels, the sessions of both workers move, and
/// the peers' workers share the channel port (docs/design.md#built-l2proxys-side-of-the-interface-issue-19).
/// </summary>
[Collection(MigrationWorkersClusterGroup.Name)]
public sealed class MigrationWorkersClusterTests(MigrationWorkersClusterFixture fixture, ITestOutputHelper output) : MigrationClusterTests(fixture, output);
