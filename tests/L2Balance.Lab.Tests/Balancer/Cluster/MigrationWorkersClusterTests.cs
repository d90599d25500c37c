using System.Diagnostics;
using System.Globalization;
using L2Balance.Lab.Cluster;
using L2Balance.Lab.Tests.Proxy;
using L2Balance.Tests.Common;
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
/// The drains of <see cref="MigrationClusterTests"/> that depend on workers, with two workers per l2proxy:
/// the supervisor forwards l2bal's requests to both over their channels, the sessions and UDP
/// associations of both workers move, and the peers' workers share the channel port
/// (docs/design.md#built-l2proxys-side-of-the-interface-issue-19). Its IPv6, reused-port and
/// restore-failure tests run on the single-process cluster only: nothing of them goes through a worker's
/// channel that these two do not.
/// </summary>
[Collection(MigrationWorkersClusterGroup.Name)]
public sealed class MigrationWorkersClusterTests : IAsyncLifetime
{
    private readonly MigrationWorkersClusterFixture _fixture;
    private readonly ITestOutputHelper _output;
    private readonly MigrationClusterTests _drains;

    public MigrationWorkersClusterTests(MigrationWorkersClusterFixture fixture, ITestOutputHelper output)
    {
        _fixture = fixture;
        _output = output;
        _drains = new MigrationClusterTests(fixture, output);
    }

    public Task InitializeAsync() => _drains.InitializeAsync();

    public Task DisposeAsync() => _drains.DisposeAsync();

    [SkippableFact(typeof(LabUnavailableException))]
    public Task DrainMigrate_SessionsOfBothWorkers_ContinueOnTheirBucketsNewOwnersEveryByteOnce() =>
        _drains.DrainMigrate_SessionsOfTheDrainedNode_ContinueOnTheirBucketsNewOwnersEveryByteOnce();

    [SkippableFact(typeof(LabUnavailableException))]
    public Task DrainMigrate_UdpAssociationsOfBothWorkers_ContinueOnTheirBucketsNewOwners() =>
        _drains.DrainMigrate_UdpAssociationsOfTheDrainedNode_ContinueOnTheirBucketsNewOwners();

    /// <summary>The supervisor gives up on a gone worker at once, on a silent one after 25 s (WorkerMigrationForwarder).</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Move_WorkerKilledMidRequest_ItsSessionsStayWorkersWithoutWaitingOut()
    {
        var lab = _fixture.Lab;
        var supervisor = lab.Proxy(2)!.Id;
        // Worker 1 holds the odd ids (L × 2 + 1); it is stopped, so the move waits in its channel, then killed.
        var worker = MigrationClusterTests.Children(supervisor).Single(pid => File.ReadAllText($"/proc/{pid}/cmdline").EndsWith("--worker\01\0", StringComparison.Ordinal));
        Assert.True((await lab.RunOnNode(2, "kill", ["-STOP", worker.ToString(CultureInfo.InvariantCulture)]).WithTimeout(Bound)).Succeeded);
        var clock = Stopwatch.StartNew();
        var move = MigrationLab.ControlAsync(lab.Nodes[1], $"move {ClusterLab.NodeAddress(1)}:1081 1 3");
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        Assert.False(move.IsCompleted, "the move was answered while worker 1 was stopped");
        Assert.True((await lab.RunOnNode(2, "kill", ["-KILL", worker.ToString(CultureInfo.InvariantCulture)]).WithTimeout(Bound)).Succeeded);
        var answer = await move.WithTimeout(Bound);
        _output.WriteLine($"answered {clock.ElapsedMilliseconds} ms after the request: {string.Join(" / ", answer)}");
        Assert.Equal(["stayed 1 workers", "stayed 3 workers", "end"], answer);

        // The restarted worker learns the key and the accept address again and answers.
        var restarted = await WorkerAnswersAsync(lab);
        Assert.True(restarted, $"no worker 1 answered within {Bound}\n{_fixture.Describe()}");
    }

    /// <summary>True once a move of an id of worker 1 gets worker 1's own answer (not the supervisor's <c>workers</c>).</summary>
    private static async Task<bool> WorkerAnswersAsync(ClusterLab lab)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < Bound)
        {
            var answer = await MigrationLab.ControlAsync(lab.Nodes[1], $"move {ClusterLab.NodeAddress(1)}:1081 1");
            if (answer is ["stayed 1 not-established", "end"])
            {
                return true;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200));
        }
        return false;
    }
}
