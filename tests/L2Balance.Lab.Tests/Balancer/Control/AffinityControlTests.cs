using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using L2Balance.Balancer.Cluster;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Control;

/// <summary>
/// A running daemon with affinity rules: <c>status --json</c> lists them, and <c>l2bal owner</c>
/// answers each port by its mode, with the mirror's bucket (one-node cluster).
/// </summary>
public sealed class AffinityControlTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Owner_PortOfEachMode_AnswersTheMirrorsBucketOfThatMode()
    {
        await using var lab = await ClusterLab.CreateAsync(nodes: 1, clientAddresses: 1, startTargetServers: false).WithTimeout(Deadline);
        lab.StartBalancer(1, "--service", "udp/53", "--service", "tcp/1080", "--service", "tcp/80",
            "--affinity", "udp/53=none", "--affinity", "tcp/1080=network");
        var status = await StatusAsync(lab);
        Assert.Equal(["udp/53=none", "tcp/1080=network"], status.GetProperty("affinity").EnumerateArray().Select(e => e.GetString()!));

        var client = IPAddress.Parse("198.18.64.10");
        Span<byte> vip = stackalloc byte[4];
        ClusterLab.VipAddress.TryWriteBytes(vip, out _);
        uint seed = BinaryPrimitives.ReadUInt32BigEndian(vip); // the default seed: the cluster id, the VIP as a number
        int buckets = status.GetProperty("buckets").GetInt32();

        Assert.Equal(BucketHash.Bucket(client, 40000, AffinityMode.None, buckets, seed),
            await BucketAsync(lab, "owner", client.ToString(), "--port", "udp/53", "--source-port", "40000"));
        Assert.Equal(BucketHash.Bucket(client, 0, AffinityMode.Network, buckets, seed),
            await BucketAsync(lab, "owner", client.ToString(), "--port", "tcp/1080"));
        Assert.Equal(BucketHash.Bucket(client, buckets, seed), await BucketAsync(lab, "owner", client.ToString(), "--port", "tcp/80", "--source-port", "40000"));
        Assert.Equal(BucketHash.Bucket(client, buckets, seed), await BucketAsync(lab, "owner", client.ToString()));

        var noPort = await lab.RunOnNode(1, ClusterBinaries.L2Bal, ["owner", client.ToString(), "--port", "udp/53"]).WithTimeout(Deadline);
        Assert.False(noPort.Succeeded, noPort.ToString());
        Assert.StartsWith("error: udp/53 has affinity none", noPort.StdOut + noPort.StdErr, StringComparison.Ordinal);
    }

    private static async Task<int> BucketAsync(ClusterLab lab, params string[] args)
    {
        var result = await lab.RunOnNode(1, ClusterBinaries.L2Bal, args).WithTimeout(Deadline);
        var match = Regex.Match(result.StdOut, @" bucket (\d+) owner ");
        Assert.True(result.Succeeded && match.Success, result.ToString());
        return int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    private static async Task<JsonElement> StatusAsync(ClusterLab lab)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            // Right after the start the control socket may not exist yet.
            var result = await lab.RunOnNode(1, ClusterBinaries.L2Bal, ["status", "--json"]).WithTimeout(Deadline);
            if (result.Succeeded)
            {
                using var doc = JsonDocument.Parse(result.StdOut);
                return doc.RootElement.Clone();
            }

            Assert.True(DateTime.UtcNow < deadline, $"{result}\n{lab.Describe()}");
            await Task.Delay(100);
        }
    }
}
