using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Lab;

/// <summary>
/// Builds the cluster lab once (3 nodes, 60 client addresses, target servers) and tears it down
/// even when construction fails (docs/conventions.md §26). Tests that change a node undo it in a finally.
/// </summary>
public sealed class ClusterLabFixture : IAsyncLifetime
{
    public const int NodeCount = 3;
    public const int ClientCount = 60;
    public static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(30);

    private ClusterLab? _lab;

    public ClusterLab Lab => _lab ?? throw new InvalidOperationException("lab not built");

    public async Task InitializeAsync()
    {
        _lab = await ClusterLab.CreateAsync(NodeCount, ClientCount).WithTimeout(StepTimeout);
    }

    public Task DisposeAsync()
    {
        _lab?.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>Every daemon's captured output: attach to assertion messages.</summary>
    public string Describe() => _lab?.Describe() ?? "(no lab)";
}

[CollectionDefinition(Name)]
public sealed class ClusterLabGroup : ICollectionFixture<ClusterLabFixture>
{
    public const string Name = "cluster-lab";
}
