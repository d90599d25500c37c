using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Net;

/// <summary>
/// One segment (switch sw, nodes n1 and n2, client c on 198.18.0.0/24), built once for the class
/// and torn down even if building fails half-way.
/// </summary>
public sealed class PacketIoLab : IDisposable
{
    public PacketIoLab()
    {
        Network = LabNetwork.Create();
        try
        {
            var sw = Network.AddSwitch("sw");
            Node1 = Network.AddHost("n1");
            Node2 = Network.AddHost("n2");
            Client = Network.AddHost("c");
            Network.ConnectToSwitch(sw, Node1, "eth0");
            Network.ConnectToSwitch(sw, Node2, "eth0");
            Network.ConnectToSwitch(sw, Client, "eth0");
            Node1.AddAddress("eth0", "198.18.0.1/24");
            Node2.AddAddress("eth0", "198.18.0.2/24");
            Client.AddAddress("eth0", "198.18.0.100/24");
            Client.AddAddress("eth0", "fdc6:1200:10::100/64");
        }
        catch
        {
            Network.Dispose();
            throw;
        }
    }

    public LabNetwork Network { get; }

    public LabHost Node1 { get; }

    public LabHost Node2 { get; }

    public LabHost Client { get; }

    public void Dispose() => Network.Dispose();
}

/// <summary>The raw-socket shell of l2bal against real veths and a Linux bridge.</summary>
public sealed class PacketIoLabTests(PacketIoLab lab) : IClassFixture<PacketIoLab>
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(10);
    private static readonly IPAddress Vip = IPAddress.Parse("198.18.0.10");

    /// <summary>Multicast cluster MAC outside 01:00:5e:00:00:xx (224.0.0.0/24).</summary>
    private static readonly MacAddress ClusterMacValue = MacAddress.Parse("01:00:5e:40:00:0a");

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task ArpResponder_WhoHasForTheVip_AnswersWithClusterMacOnlyWhenEnabled()
    {
        var clientMac = InNamespace.Run(lab.Client, () => InterfaceInfo.Lookup("eth0").Mac);
        var responder = InNamespace.Run(lab.Node1, () => ArpResponder.Open("eth0", Vip, ClusterMacValue));
        await using (responder)
        {
            responder.Start();

            // Disabled: who-has is seen but not answered.
            await Ip(lab.Client, "neigh", "flush", "dev", "eth0");
            await TouchVipAsync();
            await WaitUntilAsync(() => responder.Ignored(ArpIgnoreReason.Disabled) > 0, "disabled responder to see a who-has");
            Assert.Equal(0, responder.RepliesSent);
            Assert.DoesNotContain(ClusterMacValue.ToString(), await Neighbour(), StringComparison.Ordinal);

            // Enabled: the reply carries the cluster MAC, sent from node1's own MAC.
            responder.Enabled = true;
            await Ip(lab.Client, "neigh", "flush", "dev", "eth0");
            var capture = await StartCaptureAsync(lab.Client, "arp[6:2] = 2");
            await TouchVipAsync();
            await WaitUntilAsync(async () => (await Neighbour()).Contains(ClusterMacValue.ToString(), StringComparison.Ordinal), "client neighbour entry = cluster MAC");
            Assert.True(await capture.WaitForExitAsync(Step), capture.Describe());
            Assert.Contains($"{responder.OwnMac} > {clientMac}", capture.Log, StringComparison.Ordinal);
            Assert.Contains($"is-at {ClusterMacValue}", capture.Log, StringComparison.Ordinal);
            Assert.True(responder.RepliesSent >= 1);
            Assert.True(responder.RequestsSeen >= 2);
        }
    }

    [SkippableTheory(typeof(LabUnavailableException))]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ArpResponder_SolicitationForTheIPv6Vip_IsAnsweredWithClusterMacAndNeverByTheKernel(bool withIpv4Vip)
    {
        var vip6 = IPAddress.Parse("fdc6:1200:10::a");
        var vip = withIpv4Vip ? Vip : null;
        var clientMac = InNamespace.Run(lab.Client, () => InterfaceInfo.Lookup("eth0").Mac);
        // NodeSetup puts the VIP on lo, without DAD; the kernel answers NS only for the receiving interface's addresses.
        var setup = InNamespace.Run(lab.Node1, () => NodeSetup.Apply("eth0", vip, multicastMode: true, vip6: vip6));
        var lo = await LoAddresses();
        Assert.Contains($"inet6 {vip6}/128", lo, StringComparison.Ordinal);
        Assert.Contains("nodad", lo, StringComparison.Ordinal);
        // Alone (docs/design.md#an-ipv6-vip-alone): no IPv4 VIP, no ARP sysctls, IPv6's drop_unicast_in_l2_multicast.
        Assert.Equal(withIpv4Vip, lo.Contains($"inet {Vip}/32", StringComparison.Ordinal));
        Assert.Equal(withIpv4Vip ? "1" : "0", await Sysctl(lab.Node1, "conf.eth0.arp_ignore"));
        Assert.Equal("1", (await lab.Node1.RunAsync("sysctl", ["-n", "net.ipv6.conf.eth0.drop_unicast_in_l2_multicast"], Step)).EnsureSuccess().StdOut.Trim());
        var responder = InNamespace.Run(lab.Node1, () => ArpResponder.Open("eth0", vip, ClusterMacValue, vip6: vip6));
        try
        {
            await using (responder)
            {
                responder.Start();

                // Disabled: the solicitations arrive (the socket joined the solicited-node group) and nobody answers, the kernel neither.
                await Ip(lab.Client, "-6", "neigh", "flush", "dev", "eth0");
                var silence = lab.Client.Start("tcpdump", "-i", "eth0", "-e", "-n", "-l", "icmp6 and ip6[40] = 136");
                await WaitUntilAsync(() => silence.Log.Contains("listening on", StringComparison.Ordinal), "tcpdump to listen");
                await TouchAsync(vip6);
                await WaitUntilAsync(() => responder.NeighborIgnored(ArpIgnoreReason.Disabled) >= 2, "two solicitations seen while disabled");
                silence.Kill();
                await silence.WaitForExitAsync(Step);
                Assert.DoesNotContain("neighbor advertisement", silence.Log, StringComparison.Ordinal);
                Assert.Equal(0, responder.NeighborAnswers);

                // Enabled: a solicited, overriding NA from node1's own MAC names the cluster MAC.
                responder.Enabled = true;
                await Ip(lab.Client, "-6", "neigh", "flush", "dev", "eth0");
                var capture = await StartCaptureAsync(lab.Client, "icmp6 and ip6[40] = 136");
                await TouchAsync(vip6);
                await WaitUntilAsync(async () => (await Neighbour(vip6)).Contains(ClusterMacValue.ToString(), StringComparison.Ordinal), "client IPv6 neighbour entry = cluster MAC");
                Assert.True(await capture.WaitForExitAsync(Step), capture.Describe());
                Assert.Contains($"{responder.OwnMac} > {clientMac}", capture.Log, StringComparison.Ordinal);
                Assert.Contains($"tgt is {vip6}", capture.Log, StringComparison.Ordinal);
                Assert.True(responder.NeighborAnswers >= 1);

                // Unsolicited NA: a stale entry at another MAC moves to the cluster MAC.
                await Ip(lab.Client, "-6", "neigh", "replace", vip6.ToString(), "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "stale");
                responder.SendGratuitous();
                await WaitUntilAsync(async () => (await Neighbour(vip6)).Contains(ClusterMacValue.ToString(), StringComparison.Ordinal), "unsolicited NA to update the entry");
                Assert.Equal(1, responder.NeighborAnnouncements);

                // Another host advertising the VIP at its own MAC is a vip-claimed spoof.
                using var client = InNamespace.Run(lab.Client, () => PacketSocket.Open("eth0", NeighborPacket.EtherTypeIPv6));
                var claim = new byte[NeighborPacket.AdvertisementFrameLength];
                NeighborPacket.WriteUnsolicitedFrame(claim, client.InterfaceMac, MacAddress.Parse("02:00:00:00:00:99"), vip6);
                client.Send(claim);
                await WaitUntilAsync(() => responder.Spoofs(SpoofKind.VipClaimed) == 1, "the claim to be counted");
                Assert.Equal(1, responder.NeighborClaims);
                Assert.True(responder.NeighborSolicitations >= 3, $"{responder.NeighborSolicitations} solicitations seen");
                Assert.Equal(0, responder.RequestsSeen);
            }
        }
        finally
        {
            InNamespace.Run(lab.Node1, setup.Undo);
        }
        Assert.DoesNotContain(vip6.ToString(), await LoAddresses(), StringComparison.Ordinal);
        Assert.Equal("0", (await lab.Node1.RunAsync("sysctl", ["-n", "net.ipv6.conf.eth0.drop_unicast_in_l2_multicast"], Step)).EnsureSuccess().StdOut.Trim());
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task ArpResponder_RequestUnicastToClusterMac_IsAnswered()
    {
        var responder = InNamespace.Run(lab.Node1, () => ArpResponder.Open("eth0", Vip, ClusterMacValue));
        using var client = InNamespace.Run(lab.Client, () => PacketSocket.Open("eth0", EthernetFrame.EtherTypeArp));
        await using (responder)
        {
            responder.Enabled = true;
            responder.Start();

            // The request a client sends to refresh a STALE entry: unicast to the cached (cluster) MAC.
            var probe = new ArpPacket(ArpOperation.Request, client.InterfaceMac, IPAddress.Parse("198.18.0.100"), MacAddress.Zero, Vip);
            var frame = new byte[EthernetFrame.MinimumLength];
            int length = probe.WriteFrame(frame, ClusterMacValue, client.InterfaceMac);
            client.Send(frame.AsSpan(0, length));

            var buffer = new byte[2048];
            using var cts = new CancellationTokenSource(Step);
            while (true)
            {
                int n = await client.ReceiveAsync(buffer, cts.Token);
                Assert.True(EthernetFrame.TryParse(buffer.AsSpan(0, n), out var ethernet, out _));
                if (ArpPacket.TryParse(buffer.AsSpan(EthernetFrame.HeaderLength, n - EthernetFrame.HeaderLength), out var reply, out _)
                    && reply.Operation == ArpOperation.Reply && reply.SenderIp.Equals(Vip))
                {
                    Assert.Equal(responder.OwnMac, ethernet.Source);
                    Assert.Equal(client.InterfaceMac, ethernet.Destination);
                    Assert.Equal(ClusterMacValue, reply.SenderMac);
                    Assert.Equal(client.InterfaceMac, reply.TargetMac);
                    break;
                }
            }

            Assert.Equal(1, responder.RepliesSent);
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task ArpResponder_GratuitousArp_UpdatesStaleClientEntry()
    {
        var responder = InNamespace.Run(lab.Node1, () => ArpResponder.Open("eth0", Vip, ClusterMacValue));
        await using (responder)
        {
            await Ip(lab.Client, "neigh", "replace", Vip.ToString(), "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "stale");
            Assert.Contains("02:00:00:00:00:99", await Neighbour(), StringComparison.Ordinal);

            // No wait for locktime: a reply with target MAC = sender MAC is a GARP to Linux
            // (arp_is_garp in net/ipv4/arp.c) and replaces even a fresh entry at once.
            // Only this responder's frames: the client's own ARP traffic must not end a one-frame capture.
            var capture = await StartCaptureAsync(lab.Client, $"arp and ether src {responder.OwnMac}");
            responder.SendGratuitous();

            await WaitUntilAsync(async () => (await Neighbour()).Contains(ClusterMacValue.ToString(), StringComparison.Ordinal), "gratuitous ARP to update the entry");
            Assert.True(await capture.WaitForExitAsync(Step), capture.Describe());
            Assert.True(capture.Log.Contains($"{responder.OwnMac} > ff:ff:ff:ff:ff:ff", StringComparison.Ordinal), capture.Describe());
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task AdvertChannel_SentPayloads_ReachThePeerButNotTheSender()
    {
        var sender = InNamespace.Run(lab.Node1, () => AdvertChannel.Open("eth0"));
        var receiver = InNamespace.Run(lab.Node2, () => AdvertChannel.Open("eth0"));
        await using (sender)
        await using (receiver)
        {
            var payloads = Enumerable.Range(0, 10).Select(i => Enumerable.Range(0, 100).Select(b => (byte)(i * 7 + b)).ToArray()).ToList();
            foreach (var p in payloads)
            {
                sender.Send(p);
            }

            for (int i = 0; i < payloads.Count; i++)
            {
                var frame = await ReceiveAsync(receiver);
                Assert.Equal(sender.OwnMac, frame.Source);
                Assert.Equal(payloads[i], frame.Payload);
            }

            // A frame from node2 reaches node1; node1's own ten never did.
            var back = new byte[AdvertChannel.MinimumPayloadLength];
            back[0] = 0xEE;
            receiver.Send(back);
            var reply = await ReceiveAsync(sender);
            Assert.Equal(receiver.OwnMac, reply.Source);
            Assert.Equal(back, reply.Payload);
            Assert.False(sender.TryReceive(out _));
            Assert.Equal(1, sender.Received);
            Assert.False(receiver.TryReceive(out _));
            Assert.Equal(10, receiver.Received);
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task AdvertChannel_ShortFrame_IsCountedAndDropped()
    {
        var receiver = InNamespace.Run(lab.Node2, () => AdvertChannel.Open("eth0"));
        using var raw = InNamespace.Run(lab.Node1, () => PacketSocket.Open("eth0", AdvertChannel.EtherType));
        await using (receiver)
        {
            var frame = new byte[EthernetFrame.HeaderLength + 20];
            EthernetFrame.Write(new EthernetHeader(MacAddress.Broadcast, raw.InterfaceMac, AdvertChannel.EtherType), frame);
            raw.Send(frame);
            // Polling is what classifies: the short frame is counted when the reader takes it.
            await WaitUntilAsync(() => !receiver.TryReceive(out _) && receiver.Dropped(AdvertFrameDrop.Short) == 1, "short frame counted");
            Assert.False(receiver.TryReceive(out _));
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task AdvertChannel_FrameLongerThanItsMaximum_IsCountedAsOversizeNeverTakenCut()
    {
        var receiver = InNamespace.Run(lab.Node2, () => AdvertChannel.Open("eth0", maximumPayloadLength: 200));
        using var raw = InNamespace.Run(lab.Node1, () => PacketSocket.Open("eth0", AdvertChannel.EtherType));
        await using (receiver)
        {
            // One byte too many (it fits the ring's slot), a whole Ethernet payload (the slot holds
            // less: the kernel cuts it there), then one of exactly the maximum.
            foreach (var length in new[] { 201, 1500, 200 })
            {
                var frame = new byte[EthernetFrame.HeaderLength + length];
                EthernetFrame.Write(new EthernetHeader(MacAddress.Broadcast, raw.InterfaceMac, AdvertChannel.EtherType), frame);
                frame.AsSpan(EthernetFrame.HeaderLength).Fill((byte)(length & 0xff));
                raw.Send(frame);
            }

            var taken = await ReceiveAsync(receiver);
            Assert.Equal(Enumerable.Repeat((byte)200, 200), taken.Payload);
            Assert.Equal(2, receiver.Dropped(AdvertFrameDrop.Oversize));
            Assert.False(receiver.TryReceive(out _));
            Assert.Equal(1, receiver.Received);
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task AdvertChannel_MoreFramesThanTheRingHolds_TakesARingfulAndCountsTheRestAsKernelDrops()
    {
        var receiver = InNamespace.Run(lab.Node2, () => AdvertChannel.Open("eth0"));
        using var raw = InNamespace.Run(lab.Node1, () => PacketSocket.Open("eth0", AdvertChannel.EtherType));
        await using (receiver)
        {
            const int Extra = 100;
            var frame = new byte[EthernetFrame.HeaderLength + AdvertChannel.MinimumPayloadLength];
            EthernetFrame.Write(new EthernetHeader(MacAddress.Broadcast, raw.InterfaceMac, AdvertChannel.EtherType), frame);
            for (var i = 0; i < receiver.RingFrames + Extra; i++)
            {
                raw.Send(frame);
            }

            // Nothing was read meanwhile: the ring is full and the kernel counted what it could not hold.
            var buffer = new byte[receiver.FrameBufferLength];
            var taken = 0;
            await WaitUntilAsync(() =>
            {
                while (receiver.TryReceive(buffer, out _) > 0)
                {
                    taken++;
                }
                return taken + receiver.ReadKernelDrops() >= receiver.RingFrames + Extra;
            }, "every frame taken or dropped");
            Assert.Equal(receiver.RingFrames, taken);
            Assert.Equal(Extra, receiver.KernelDrops);
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task AdvertChannel_InterfaceDownOnTheNode_ErrorIsTakenAndCountedOnceThenNothingIsPending()
    {
        var receiver = InNamespace.Run(lab.Node2, () => AdvertChannel.Open("eth0"));
        await using (receiver)
        {
            await Ip(lab.Node2, "link", "set", "eth0", "down");
            try
            {
                // The kernel sets ENETDOWN on the socket once; the first receive takes it, the next finds nothing.
                Assert.False(receiver.TryReceive(out _));
                Assert.Equal(1, receiver.SocketErrors);
                Assert.Contains("ENETDOWN", receiver.LastSocketError, StringComparison.Ordinal);
                Assert.False(receiver.TryReceive(out _));
                Assert.Equal(1, receiver.SocketErrors);
            }
            finally
            {
                await Ip(lab.Node2, "link", "set", "eth0", "up");
            }

            // Hooked again once up: a frame arrives through the ring.
            using var raw = InNamespace.Run(lab.Node1, () => PacketSocket.Open("eth0", AdvertChannel.EtherType));
            var frame = new byte[EthernetFrame.HeaderLength + AdvertChannel.MinimumPayloadLength];
            EthernetFrame.Write(new EthernetHeader(MacAddress.Broadcast, raw.InterfaceMac, AdvertChannel.EtherType), frame);
            await WaitUntilAsync(() =>
            {
                raw.Send(frame);
                return receiver.TryReceive(out _);
            }, "a frame after the interface came back");
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task PacketSocket_UnicastMembership_RaisesPromiscuityOnlyWhileOpen()
    {
        Assert.Contains("promiscuity 0", await LinkDetails(), StringComparison.Ordinal);
        var socket = InNamespace.Run(lab.Node1, () => PacketSocket.Open("eth0", AdvertChannel.EtherType));
        using (socket)
        {
            socket.AddMembership(ClusterMac.Multicast(7));
            socket.AddMembership(ClusterMac.UnicastFlood(7));
            // veth has no unicast filter: the kernel turns promiscuity on instead (docs/design.md#receiving-cluster-mac-frames).
            Assert.Contains("promiscuity 1", await LinkDetails(), StringComparison.Ordinal);
        }

        // The membership lives and dies with the socket.
        Assert.Contains("promiscuity 0", await LinkDetails(), StringComparison.Ordinal);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public void PacketSocket_UnknownInterface_ErrorNamesIt()
    {
        var ex = Assert.Throws<InterfaceNotFoundException>(() => InNamespace.Run(lab.Node1, () => PacketSocket.Open("nosuch0", 0x88B5)));
        Assert.Contains("nosuch0", ex.Message, StringComparison.Ordinal);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task NodeSetup_ApplyThenUndo_RestoresVipAndSysctlsAndAdoptsLeftovers()
    {
        var keys = new[] { "conf.eth0.arp_ignore", "conf.eth0.arp_announce", "conf.all.arp_announce", "conf.eth0.drop_unicast_in_l2_multicast" };
        var before = await Task.WhenAll(keys.Select(k => Sysctl(lab.Node1, k)));
        Assert.Equal(["0", "0", "0", "0"], before);

        var setup = InNamespace.Run(lab.Node1, () => NodeSetup.Apply("eth0", Vip, multicastMode: true));
        Assert.False(setup.VipWasPresent);
        Assert.Contains("inet 198.18.0.10/32", await LoAddresses(), StringComparison.Ordinal);
        Assert.Equal(["1", "2", "2", "1"], await Task.WhenAll(keys.Select(k => Sysctl(lab.Node1, k))));

        // A second start finds the VIP already there (a crashed run's leftover) and adopts it.
        var again = InNamespace.Run(lab.Node1, () => NodeSetup.Apply("eth0", Vip, multicastMode: true));
        Assert.True(again.VipWasPresent);
        InNamespace.Run(lab.Node1, again.Undo);
        InNamespace.Run(lab.Node1, setup.Undo);

        Assert.DoesNotContain("198.18.0.10", await LoAddresses(), StringComparison.Ordinal);
        Assert.Equal(before, await Task.WhenAll(keys.Select(k => Sysctl(lab.Node1, k))));
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public void NodeSetup_BadInput_GivesClearError()
    {
        Assert.Throws<InterfaceNotFoundException>(() => InNamespace.Run(lab.Node1, () => NodeSetup.Apply("nosuch0", Vip, false)));
        Assert.Throws<ArgumentException>(() => InNamespace.Run(lab.Node1, () => NodeSetup.Apply("eth0", IPAddress.Parse("fdc6::10"), false)));
    }

    private Task<string> Neighbour() => Neighbour(Vip);

    private async Task<string> Neighbour(IPAddress address) =>
        (await lab.Client.RunAsync("ip", ["neigh", "show", address.ToString(), "dev", "eth0"], Step)).EnsureSuccess().StdOut;

    /// <summary>Makes the client resolve <paramref name="address"/>: a TCP connect attempt that nobody answers.</summary>
    private async Task TouchAsync(IPAddress address)
    {
        try
        {
            using var s = await lab.Client.ConnectTcpAsync(new IPEndPoint(address, 9), TimeSpan.FromMilliseconds(300));
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            // Expected: the point is the solicitation it triggers.
        }
    }

    private async Task<string> LinkDetails() =>
        (await lab.Node1.RunAsync("ip", ["-d", "link", "show", "eth0"], Step)).EnsureSuccess().StdOut;

    private async Task<string> LoAddresses() =>
        (await lab.Node1.RunAsync("ip", ["addr", "show", "dev", "lo"], Step)).EnsureSuccess().StdOut;

    /// <summary>The next advert the channel has, polling as the daemon's loop does, with a deadline.</summary>
    private static async Task<AdvertFrame> ReceiveAsync(AdvertChannel channel)
    {
        var deadline = DateTime.UtcNow + Step;
        while (true)
        {
            if (channel.TryReceive(out var frame))
            {
                return frame;
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"no advert within {Step.TotalSeconds:0} s");
            }
            await Task.Delay(5);
        }
    }

    private static async Task<string> Sysctl(LabHost host, string key) =>
        (await host.RunAsync("sysctl", ["-n", "net.ipv4." + key], Step)).EnsureSuccess().StdOut.Trim();

    private static async Task Ip(LabHost host, params string[] args) =>
        (await host.RunAsync("ip", args, Step)).EnsureSuccess();

    /// <summary>Makes the client resolve the VIP: a TCP connect attempt that nobody answers.</summary>
    private Task TouchVipAsync() => TouchAsync(Vip);

    /// <summary>tcpdump -e on eth0 until one matching frame; returns once it listens.</summary>
    private static async Task<LabProcess> StartCaptureAsync(LabHost host, string filter)
    {
        var capture = host.Start("tcpdump", "-i", "eth0", "-e", "-n", "-l", "-c", "1", filter);
        await WaitUntilAsync(() => capture.Log.Contains("listening on", StringComparison.Ordinal) || capture.HasExited, "tcpdump to listen");
        Assert.False(capture.HasExited, capture.Describe());
        return capture;
    }

    private static Task WaitUntilAsync(Func<bool> condition, string what) =>
        WaitUntilAsync(() => Task.FromResult(condition()), what);

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Step;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"waiting for {what}");
            }

            await Task.Delay(20);
        }
    }
}
