using System.Net;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Kernel;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Kernel;

/// <summary>
/// The nftables filter in a node namespace, driven in-process through libnftables (a context opened
/// on a thread that entered the node's namespace), judged by what a client namespace observes.
/// </summary>
public sealed class KernelFilterLabTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan EchoTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The hash mirror proof: exactly the sources whose <see cref="BucketHash"/> bucket is owned get a
    /// SYN-ACK; the rest time out (never a RST). Once with the early drop deciding (owned = accepted),
    /// once with ip prerouting deciding (accepted = all buckets), in both MAC modes.
    /// </summary>
    [SkippableTheory(typeof(LabUnavailableException))]
    [InlineData(false, 4096, 0xdeadbeefu)]
    [InlineData(true, 1024, 0x5eedu)]
    public async Task OwnedBuckets_SourcesByHashMirror_ConnectExactlyWhenOwned(bool unicastFlood, int buckets, uint seed)
    {
        var mode = unicastFlood ? MacMode.UnicastFlood : MacMode.Multicast;
        using var lab = await FilterLab.CreateAsync(mode);
        using var filter = new NftablesFilter(lab.Node.NamespacePath);
        filter.Install(lab.Settings(mode, buckets, seed));

        // Own the buckets of every other source (so both outcomes occur), nothing else.
        var owned = new BucketSet(buckets);
        var expected = new HashSet<IPAddress>();
        for (int i = 0; i < FilterLab.Sources.Count; i += 2)
        {
            owned.Add(BucketHash.Bucket(FilterLab.Sources[i], buckets, seed));
        }

        foreach (var s in FilterLab.Sources.Where(s => owned.Contains(BucketHash.Bucket(s, buckets, seed))))
        {
            expected.Add(s);
        }

        Assert.InRange(expected.Count, FilterLab.Sources.Count / 2, FilterLab.Sources.Count - 1);

        filter.Apply(owned, owned, ownSlice: true, Lease);
        var early = await lab.ConnectingSourcesAsync(FilterLab.Sources);
        var afterEarly = filter.ReadCounters();

        var all = FilterLab.AllBuckets(buckets);

        filter.Apply(owned, all, ownSlice: true, Lease);
        var late = await lab.ConnectingSourcesAsync(FilterLab.Sources);
        var afterLate = filter.ReadCounters();

        Assert.Equal(Sorted(expected), Sorted(early));
        Assert.Equal(Sorted(expected), Sorted(late));
        Assert.True(afterEarly.DroppedNotOwnedEarly >= FilterLab.Sources.Count - expected.Count, afterEarly.ToString());
        Assert.Equal(0, afterEarly.DroppedNotOwned);
        Assert.True(afterLate.DroppedNotOwned >= FilterLab.Sources.Count - expected.Count, afterLate.ToString());
        Assert.True(afterLate.AcceptedNew >= 2 * expected.Count, afterLate.ToString());
    }

    /// <summary>
    /// Moving a bucket away (owned → draining) keeps the established flow and refuses new ones from
    /// that source; the conntrack mark shows the draining flow under its bucket.
    /// </summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Apply_BucketMovedAway_KeepsEstablishedFlowAndRefusesNewOnes()
    {
        const int buckets = 4096;
        const uint seed = 0x5eed;
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = new NftablesFilter(lab.Node.NamespacePath);
        filter.Install(lab.Settings(MacMode.Multicast, buckets, seed));
        var source = FilterLab.Sources[0];
        int bucket = BucketHash.Bucket(source, buckets, seed);
        var owned = new BucketSet(buckets);
        owned.Add(bucket);
        filter.Apply(owned, owned, ownSlice: true, Lease);

        using var established = await lab.TryConnectAsync(source);
        Assert.NotNull(established);
        Assert.True(await FilterLab.EchoAsync(established, "before", EchoTimeout).WithTimeout());
        Assert.Equal(1, filter.FlowsByBucket().GetValueOrDefault(bucket));

        var draining = owned.Clone();
        owned.Remove(bucket);
        filter.Apply(owned, draining, ownSlice: true, Lease);

        Assert.True(await FilterLab.EchoAsync(established, "during the drain", EchoTimeout).WithTimeout());
        using var refused = await lab.TryConnectAsync(source);
        Assert.Null(refused);
        Assert.Equal(1, filter.FlowsByBucket().GetValueOrDefault(bucket));
        Assert.True(filter.ReadCounters().DroppedNotOwned >= 1);
    }

    /// <summary>
    /// Port slices judge by port before the bucket: the own slice is accepted with no bucket owned,
    /// and another node's slice is refused with every bucket owned (the ingress chain accepts an
    /// owned bucket at once, so that refusal is ip prerouting's). The listener's port 8080 is put in
    /// one slice or the other, and the own slice is refused while Apply does not grant it.
    /// </summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task PortSlices_OwnOrOthers_AreAcceptedOrRefusedWhateverBucketsAreOwned()
    {
        const int buckets = 1024;
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = new NftablesFilter(lab.Node.NamespacePath);
        var all = FilterLab.AllBuckets(buckets);

        filter.Install(lab.Settings(MacMode.Multicast, buckets, 0x5eed) with { OwnSlice = new PortSpan(8000, 8999), AllSlices = new PortSpan(8000, 9999) });
        filter.Apply(new BucketSet(buckets), new BucketSet(buckets), ownSlice: true, Lease);
        using (var own = await lab.TryConnectAsync(FilterLab.Sources[0]))
        {
            Assert.NotNull(own);
        }

        // A node that yields to a conflict (its slice overlaps its peers') is not granted its slice:
        // the same connect is dropped, silently, as another node's slice.
        var droppedBefore = filter.ReadCounters().DroppedOtherSlice;
        filter.Apply(new BucketSet(buckets), new BucketSet(buckets), ownSlice: false, Lease);
        using (var yielded = await lab.TryConnectAsync(FilterLab.Sources[2]))
        {
            Assert.Null(yielded);
        }
        Assert.True(filter.ReadCounters().DroppedOtherSlice > droppedBefore, filter.ReadCounters().ToString());

        filter.Install(lab.Settings(MacMode.Multicast, buckets, 0x5eed) with { OwnSlice = new PortSpan(9000, 9999), AllSlices = new PortSpan(8000, 9999) });
        filter.Apply(all, all, ownSlice: true, Lease);
        using var other = await lab.TryConnectAsync(FilterLab.Sources[1]);
        Assert.Null(other);
        Assert.True(filter.ReadCounters().DroppedOtherSlice >= 1, filter.ReadCounters().ToString());
    }

    /// <summary>With --service, only the listed ports take new flows; others are dropped without a RST.</summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Services_PortNotListed_TakesNoNewFlow()
    {
        const int buckets = 1024;
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = new NftablesFilter(lab.Node.NamespacePath);
        var all = FilterLab.AllBuckets(buckets);

        // The echo server listens on FilterLab.Port: offered, it connects; not offered, it is dropped.
        filter.Install(lab.Settings(MacMode.Multicast, buckets, 0x5eed) with { ServicePorts = [("tcp", FilterLab.Port)] });
        filter.Apply(all, all, ownSlice: true, Lease);
        using (var offered = await lab.TryConnectAsync(FilterLab.Sources[0]))
        {
            Assert.NotNull(offered);
        }

        filter.Install(lab.Settings(MacMode.Multicast, buckets, 0x5eed) with { ServicePorts = [("tcp", FilterLab.Port + 1)] });
        filter.Apply(all, all, ownSlice: true, Lease);
        using var other = await lab.TryConnectAsync(FilterLab.Sources[1]);
        Assert.Null(other);
    }

    /// <summary>Without renewal the lease expires: new flows are refused, established ones go on; renewing restores.</summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Lease_Expired_RefusesNewFlowsUntilRenewed()
    {
        const int buckets = 1024;
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = new NftablesFilter(lab.Node.NamespacePath);
        // 2 s: a connect right after a renewal must fit in the lease with its SYN's first resend (1 s) on a loaded machine.
        var lease = TimeSpan.FromSeconds(2);
        filter.Install(lab.Settings(MacMode.Multicast, buckets, 0x5eed) with { Lease = lease });
        var all = FilterLab.AllBuckets(buckets);

        filter.Apply(all, all, ownSlice: true, lease);
        filter.RenewLease();
        using var established = await lab.TryConnectAsync(FilterLab.Sources[0]);
        Assert.True(established is not null, $"no connection within the lease: {filter.ReadCounters()}");

        await Task.Delay(lease + TimeSpan.FromSeconds(1));

        using var refused = await lab.TryConnectAsync(FilterLab.Sources[1]);
        Assert.True(refused is null, $"a new flow taken after the lease expired: {filter.ReadCounters()}");
        Assert.True(await FilterLab.EchoAsync(established, "still here", EchoTimeout).WithTimeout());
        Assert.True(filter.ReadCounters().DroppedNoLease >= 1, $"no drop counted for the expired lease: {filter.ReadCounters()}");

        // The packet-path renewal re-creates an expired element (update on a dynamic set).
        filter.RenewLease();
        Assert.Equal(2, filter.ReadCounters().LeaseRenewals);
        using var restored = await lab.TryConnectAsync(FilterLab.Sources[1]);
        Assert.True(restored is not null, $"no new flow after the renewal: {filter.ReadCounters()}");
    }

    /// <summary>
    /// Owner tables: they survive <c>nft flush ruleset</c> from another process, nobody else may
    /// change them (another process, another context), the owning context keeps changing them across
    /// transactions, and they vanish when the context closes (no Remove).
    /// </summary>
    /// <summary>
    /// The counter objects read over netlink (<see cref="L2Balance.Balancer.Net.NftObjSocket"/>): a table's counters by name,
    /// and a table that is not there is an error, never an empty read that status would show as zeros.
    /// </summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task CounterObjects_OfTheInstalledTableAndOfAnAbsentOne_NamedOrTheTableIsGone()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        var settings = lab.Settings(MacMode.Multicast, 4096, 0x5eed);
        using var filter = new NftablesFilter(lab.Node.NamespacePath);
        filter.Install(settings);
        using var context = new NftContext(lab.Node.NamespacePath);
        using var socket = context.InNamespace(L2Balance.Balancer.Net.NftObjSocket.Open);

        var netdev = socket.Counters("netdev", settings.TableName);
        var ip = socket.Counters("ip", settings.TableName);

        Assert.Contains(NftRuleset.Counters.DroppedNotOwnedEarly, netdev.Keys);
        Assert.Contains(NftRuleset.Counters.AcceptedNew, ip.Keys);
        Assert.DoesNotContain(NftRuleset.Counters.AcceptedNew, netdev.Keys);
        var gone = Assert.Throws<IOException>(() => socket.Counters("ip", settings.TableName + "_absent"));
        Assert.Contains("the table is gone", gone.Message, StringComparison.Ordinal);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task OwnerTables_FlushRulesetByOthers_SurviveUntilTheContextCloses()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        var settings = lab.Settings(MacMode.Multicast, 4096, 0x5eed);
        var filter = new NftablesFilter(lab.Node.NamespacePath);
        try
        {
            filter.Install(settings);
            var all = new BucketSet(4096);
            for (int b = 0; b < 4096; b++)
            {
                all.Add(b);
            }

            (await lab.Node.RunAsync("nft", ["flush", "ruleset"], TimeSpan.FromSeconds(10)).WithTimeout()).EnsureSuccess();
            var tables = await lab.ListTablesAsync();
            Assert.Contains("table netdev l2bal", tables, StringComparison.Ordinal);
            Assert.Contains("table ip l2bal", tables, StringComparison.Ordinal);

            var other = await lab.Node.RunAsync("nft", ["delete", "table", "ip", "l2bal"], TimeSpan.FromSeconds(10)).WithTimeout();
            Assert.False(other.Succeeded, other.ToString());
            using (var second = new NftContext(lab.Node.NamespacePath))
            {
                var ex = Assert.Throws<KernelFilterException>(() => second.Run(NftRuleset.RenewLease(settings, Lease)));
                Assert.Contains("flush set ip l2bal lease", ex.Message, StringComparison.Ordinal);
            }

            // The same context (one netlink socket for its lifetime) still owns and changes them.
            filter.Apply(all, all, ownSlice: true, Lease);
            filter.RenewLease();
            using var connected = await lab.TryConnectAsync(FilterLab.Sources[0]);
            Assert.NotNull(connected);
        }
        finally
        {
            filter.Dispose();
        }

        var after = await lab.ListTablesAsync();
        Assert.DoesNotContain("l2bal", after, StringComparison.Ordinal);
    }

    /// <summary>A process that installed owner tables and is killed takes them with it (the kernel closes its socket).</summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task OwnerTables_InstallingProcessKilled_Vanish()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.UnicastFlood);
        var dir = lab.Network.CreateTempDirectory("owner");
        var rules = Path.Combine(dir, "install.nft");
        await File.WriteAllTextAsync(rules, NftRuleset.Install(lab.Settings(MacMode.UnicastFlood, 4096, 0x5eed)));
        const string Helper =
            "import ctypes, sys, time\n"
            + "lib = ctypes.CDLL('libnftables.so.1')\n"
            + "lib.nft_ctx_new.restype = ctypes.c_void_p\n"
            + "lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]\n"
            + "ctx = lib.nft_ctx_new(0)\n"
            + "print('rc', lib.nft_run_cmd_from_buffer(ctx, open(sys.argv[1], 'rb').read()), flush=True)\n"
            + "time.sleep(120)\n";
        var helper = lab.Node.Start("/usr/bin/python3", "-c", Helper, rules);

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        string tables;
        while (!(tables = await lab.ListTablesAsync()).Contains("table ip l2bal", StringComparison.Ordinal))
        {
            Assert.False(helper.HasExited, helper.Describe());
            Assert.True(DateTime.UtcNow < deadline, "helper never installed the tables\n" + helper.Describe());
            await Task.Delay(50);
        }

        Assert.Contains("table netdev l2bal", tables, StringComparison.Ordinal);
        helper.Kill(9);
        Assert.True(await helper.WaitForExitAsync(TimeSpan.FromSeconds(10)).WithTimeout());

        Assert.DoesNotContain("l2bal", await lab.ListTablesAsync(), StringComparison.Ordinal);
    }

    /// <summary>Remove deletes both tables; Install after Remove works again.</summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Remove_ThenInstallAgain_DeletesTablesAndInstallsAgain()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = new NftablesFilter(lab.Node.NamespacePath);
        var settings = lab.Settings(MacMode.Multicast, 4096, 0x5eed);
        filter.Install(settings);
        filter.Install(settings);

        filter.Remove();
        Assert.DoesNotContain("l2bal", await lab.ListTablesAsync(), StringComparison.Ordinal);

        filter.Install(settings);
        Assert.Contains("table ip l2bal", await lab.ListTablesAsync(), StringComparison.Ordinal);
        Assert.Empty(filter.FlowsByBucket());
        Assert.Equal(0, filter.ReadCounters().AcceptedNew);
    }

    private static List<string> Sorted(IEnumerable<IPAddress> addresses) =>
        addresses.Select(a => a.ToString()).Order(StringComparer.Ordinal).ToList();
}
