using L2Balance.Lab.Cluster;
using Xunit;

namespace L2Balance.Lab.Tests.Lab;

/// <summary>The binning behind the failover timeline plot (lab/l2lab/FailoverTimeline.cs).</summary>
public sealed class TrafficResultsTests
{
    [Fact]
    public void OkPerNodePerBin_MixedOutcomes_CountsOnlySuccessesByServingNodeAndEndTime()
    {
        var results = new TrafficResults(DateTimeOffset.UnixEpoch, 300,
        [
            new ConnectRecord("198.18.64.1", 0, 10, TrafficOutcome.Ok, 1, null),
            new ConnectRecord("198.18.64.1", 50, 99.9, TrafficOutcome.Ok, 1, null),
            new ConnectRecord("198.18.64.2", 90, 100, TrafficOutcome.Ok, 2, null),
            new ConnectRecord("198.18.64.2", 120, 170, TrafficOutcome.Timeout, null, "no answer"),
            new ConnectRecord("198.18.64.3", 150, 250, TrafficOutcome.ProxyRefused, 3, "SOCKS reply 2"),
            new ConnectRecord("198.18.64.1", 250, 299, TrafficOutcome.Ok, 2, null),
        ], [], []);

        var bins = results.OkPerNodePerBin(100);

        Assert.Equal([1, 2], bins.Keys);
        Assert.Equal([2, 0, 0], bins[1]);
        Assert.Equal([0, 1, 1], bins[2]);
    }

    [Fact]
    public void OkPerNodePerBin_ZeroWidth_IsRefused()
    {
        var results = new TrafficResults(DateTimeOffset.UnixEpoch, 100, [], [], []);

        Assert.Throws<ArgumentOutOfRangeException>(() => results.OkPerNodePerBin(0));
    }
}
