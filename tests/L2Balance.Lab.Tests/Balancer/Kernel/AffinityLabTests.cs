using System.Globalization;
using System.Net;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Kernel;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Balancer.Kernel;

/// <summary>
/// Per-port affinity in the kernel (docs/design.md#buckets-and-the-hash): for each mode, the bucket
/// the kernel computes is the one <see cref="BucketHash"/> computes, bit for bit, for many source
/// addresses and source ports, in the early drop and in ip prerouting.
/// </summary>
public sealed class AffinityLabTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    /// <summary>
    /// With every bucket owned, each flow's conntrack mark (written by ip prerouting as 0x10000 |
    /// bucket) is the mirror's bucket for the port's mode; the first flows are printed as vectors.
    /// </summary>
    [SkippableTheory(typeof(LabUnavailableException))]
    [InlineData("none", 4096, 0x5eedu)]
    [InlineData("network", 1024, 0xdeadbeefu)]
    [InlineData("single", 4096, 0xdeadbeefu)]
    public async Task ConntrackMark_ManySourcesAndPorts_IsTheMirrorsBucket(string modeName, int buckets, uint seed)
    {
        var mode = ModeNamed(modeName);
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        var flows = await FlowsAsync(lab, mode, first: 10_000);
        using var filter = new NftablesFilter(lab.Node.NamespacePath);
        filter.Install(Settings(lab, mode, buckets, seed));
        var all = FilterLab.AllBuckets(buckets);
        filter.Apply(all, all, ownSlice: true, Lease);

        var sockets = await lab.ConnectFlowsAsync(flows);
        try
        {
            Assert.All(sockets, s => Assert.NotNull(s.Value));
            var marks = await lab.ConntrackMarksAsync();
            var kernel = flows.ToDictionary(f => f, f => marks.TryGetValue(f, out var mark) ? (int)(mark & 0xffff) : -1);
            foreach (var f in flows.Where((_, i) => i % 37 == 0))
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{modeName} {f.Source} sport {f.Port} buckets {buckets} seed 0x{seed:x}: kernel bucket {kernel[f]}"));
            }

            Assert.All(flows, f => Assert.Equal(NftRuleset.FlowMarkBase, marks.GetValueOrDefault(f) & ~0xffffu));
            var mismatches = flows.Where(f => kernel[f] != BucketHash.Bucket(f.Source, f.Port, mode, buckets, seed)).ToList();
            Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {flows.Count} flows differ, e.g. {string.Join(", ", mismatches.Take(5))}");
            // The key matters: none spreads one address over many buckets, network gathers a /24 in one.
            var perAddress = flows.GroupBy(f => f.Source).Max(g => g.Select(f => kernel[f]).Distinct().Count());
            Assert.Equal(mode == AffinityMode.None, perAddress > 1);
        }
        finally
        {
            foreach (var s in sockets.Values)
            {
                s?.Dispose();
            }
        }
    }

    /// <summary>
    /// Owning the mirror's buckets of every other flow: exactly those flows connect, once with the
    /// netdev early drop deciding (owned = accepted) and once with ip prerouting deciding (accepted = all).
    /// </summary>
    [SkippableTheory(typeof(LabUnavailableException))]
    [InlineData("none")]
    [InlineData("network")]
    public async Task OwnedBuckets_FlowsByModeMirror_ConnectExactlyWhenOwned(string modeName)
    {
        const int buckets = 1024;
        const uint seed = 0x5eed;
        var mode = ModeNamed(modeName);
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        var early = await FlowsAsync(lab, mode, first: 11_000);
        var late = await FlowsAsync(lab, mode, first: 12_000, addNetworks: false);
        using var filter = new NftablesFilter(lab.Node.NamespacePath);
        filter.Install(Settings(lab, mode, buckets, seed));

        var owned = new BucketSet(buckets);
        // Every other bucket the flows reach, so that both outcomes occur (a /24 shares one bucket).
        var reached = early.Concat(late).Select(f => BucketHash.Bucket(f.Source, f.Port, mode, buckets, seed)).Distinct().ToList();
        foreach (var b in reached.Where((_, i) => i % 2 == 0))
        {
            owned.Add(b);
        }

        filter.Apply(owned, owned, ownSlice: true, Lease);
        var earlyConnected = await ConnectedAsync(lab, early);
        var afterEarly = filter.ReadCounters();
        filter.Apply(owned, FilterLab.AllBuckets(buckets), ownSlice: true, Lease);
        var lateConnected = await ConnectedAsync(lab, late);
        var afterLate = filter.ReadCounters();

        var earlyExpected = Expected(early);
        var lateExpected = Expected(late);
        Assert.InRange(earlyExpected.Count, 1, early.Count - 1);
        Assert.InRange(lateExpected.Count, 1, late.Count - 1);
        Assert.Equal(earlyExpected, earlyConnected);
        Assert.Equal(lateExpected, lateConnected);
        Assert.True(afterEarly.DroppedNotOwnedEarly >= early.Count - earlyExpected.Count, afterEarly.ToString());
        Assert.Equal(0, afterEarly.DroppedNotOwned);
        Assert.True(afterLate.DroppedNotOwned >= late.Count - lateExpected.Count, afterLate.ToString());

        List<string> Expected(IEnumerable<(IPAddress Source, int Port)> flows) =>
            Names(flows.Where(f => owned.Contains(BucketHash.Bucket(f.Source, f.Port, mode, buckets, seed))));
    }

    /// <summary>
    /// Fragmented UDP datagrams (3000 bytes over a 1500-byte MTU) to a port of affinity none: every
    /// fragment passes the early drop, the datagram is judged whole in ip prerouting by its port's
    /// key, and exactly the flows whose bucket is owned arrive.
    /// </summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task FragmentedDatagrams_PortOfAffinityNone_ArriveExactlyWhenOwned()
    {
        const int buckets = 1024, port = 5353;
        const uint seed = 0x5eed;
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = new NftablesFilter(lab.Node.NamespacePath);
        filter.Install(lab.Settings(MacMode.Multicast, buckets, seed) with
        {
            ServicePorts = [("udp", port)],
            AffinityRules = [new AffinityRule("udp", port, AffinityMode.None)],
        });
        var flows = FilterLab.Sources.Select((s, i) => (Source: s, Port: 13_000 + i)).ToList();
        var owned = new BucketSet(buckets);
        foreach (var f in flows.Where((_, i) => i % 2 == 0))
        {
            owned.Add(BucketHash.Bucket(f.Source, f.Port, AffinityMode.None, buckets, seed));
        }

        filter.Apply(owned, owned, ownSlice: true, Lease);
        long reassembledBefore = await lab.ReassembledAsync();
        var arrived = await lab.SendFragmentedAsync(flows, port, size: 3000);
        var counters = filter.ReadCounters();
        long reassembled = await lab.ReassembledAsync() - reassembledBefore;

        var expected = Names(flows.Where(f => owned.Contains(BucketHash.Bucket(f.Source, f.Port, AffinityMode.None, buckets, seed))));
        Assert.InRange(expected.Count, flows.Count / 2, flows.Count - 1);
        Assert.Equal(expected, Names(arrived));
        // UDP of a port of affinity none is judged by its bucket before conntrack's established rule (stateless_udp).
        Assert.True(counters.DroppedStatelessNotOwned >= flows.Count - expected.Count, counters.ToString());
        // Every datagram was fragmented and reassembled, the dropped ones too: fragments pass the early drop.
        Assert.True(reassembled >= flows.Count, $"{reassembled} datagrams reassembled of {flows.Count}");
    }

    private static async Task<List<string>> ConnectedAsync(FilterLab lab, IEnumerable<(IPAddress Source, int Port)> flows)
    {
        var sockets = await lab.ConnectFlowsAsync(flows);
        foreach (var s in sockets.Values)
        {
            s?.Dispose();
        }

        return Names(sockets.Where(s => s.Value is not null).Select(s => s.Key));
    }

    private static List<string> Names(IEnumerable<(IPAddress Source, int Port)> flows) =>
        flows.Select(f => $"{f.Source}:{f.Port}").Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Flows to test a mode with: none, the 60 sources of one /24 with 4 source ports each (so one
    /// address reaches many buckets); network, 40 other /24s with 3 ports each and the 60 sources of
    /// the lab's /24; single, the 60 sources with 2 ports each. Ports distinct, from <paramref name="first"/>.
    /// </summary>
    private static async Task<List<(IPAddress Source, int Port)>> FlowsAsync(FilterLab lab, AffinityMode mode, int first, bool addNetworks = true)
    {
        IReadOnlyList<IPAddress> sources = FilterLab.Sources;
        int perSource = mode switch { AffinityMode.None => 4, AffinityMode.Network => 1, _ => 2 };
        var flows = sources.SelectMany((s, i) => Enumerable.Range(0, perSource).Select(k => (s, first + (i * perSource) + k))).ToList();
        if (mode == AffinityMode.Network)
        {
            var networks = addNetworks ? await lab.AddNetworkSourcesAsync(40) : Enumerable.Range(1, 40).Select(k => IPAddress.Parse($"198.18.{k}.7")).ToArray();
            int from = first + flows.Count;
            flows.AddRange(networks.SelectMany((s, i) => Enumerable.Range(0, 3).Select(k => (s, from + (i * 3) + k))));
        }

        return flows;
    }

    private static FilterSettings Settings(FilterLab lab, AffinityMode mode, int buckets, uint seed) =>
        lab.Settings(MacMode.Multicast, buckets, seed) with
        {
            ServicePorts = [("tcp", FilterLab.Port)],
            AffinityRules = [new AffinityRule("tcp", FilterLab.Port, mode)],
        };

    private static AffinityMode ModeNamed(string name) => AffinityRule.Modes.Single(m => m.Name == name).Mode;
}
