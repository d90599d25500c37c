using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Diagnostics;

/// <summary>The text of <c>l2bal status</c>: what an operator reads must not contradict the bucket map.</summary>
public class StatusTextTests
{
    [Fact]
    public void Text_DeadPeerThatHeldBuckets_ClaimsNoBucketsForIt()
    {
        var sample = StatusDocumentTests.Sample(new EventJournal()) with
        {
            Peers = [new PeerStatus(1, AdvertState.Active, true, 12, 2048), new PeerStatus(3, AdvertState.Active, false, 500, 2048)],
        };
        var lines = StatusRenderer.Text(sample).Split('\n');
        var dead = Assert.Single(lines, l => l.StartsWith("peer 3:", StringComparison.Ordinal));
        Assert.DoesNotContain("holds 2048", dead, StringComparison.Ordinal);
        Assert.Contains("holds nothing", dead, StringComparison.Ordinal);
        Assert.Contains("holds 2048", Assert.Single(lines, l => l.StartsWith("peer 1:", StringComparison.Ordinal)), StringComparison.Ordinal);
    }

    [Fact]
    public void TextAndJson_ThreeNodes_ShowEveryNodesSlice()
    {
        var sample = StatusDocumentTests.Sample(new EventJournal()) with
        {
            Slices = [new NodeSliceStatus(1, 32768, 42178), new NodeSliceStatus(2, 42179, 51589), new NodeSliceStatus(3, 51590, 60999)],
        };
        var line = Assert.Single(StatusRenderer.Text(sample).Split('\n'), l => l.StartsWith("slices:", StringComparison.Ordinal));
        Assert.Equal("slices: node 1: 32768-42178, node 2: 42179-51589, node 3: 51590-60999", line);

        using var json = System.Text.Json.JsonDocument.Parse(StatusRenderer.Json(sample));
        var slices = json.RootElement.GetProperty("slices").EnumerateArray()
            .Select(n => (n.GetProperty("nodeId").GetInt32(), n.GetProperty("low").GetInt32(), n.GetProperty("high").GetInt32())).ToArray();
        Assert.Equal([(1, 32768, 42178), (2, 42179, 51589), (3, 51590, 60999)], slices);
    }
}
