using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Net;

namespace L2Balance.Balancer.Kernel;

/// <summary>
/// <see cref="IKernelFilter"/> on nftables through libnftables: one <see cref="NftContext"/>
/// (one netlink socket) for the daemon's lifetime, so the owner tables it creates stay
/// changeable by it alone and vanish with it. About 0.2 ms a transaction (docs/benchmarks.md#kernel-mechanics).
/// </summary>
internal sealed class NftablesFilter : IKernelFilter
{
    private const int SOL_SOCKET = 1;
    private const int SO_MARK = 36;
    private const int EPERM = 1;
    private readonly NftContext _context;
    private readonly string? _namespacePath;
    private readonly Lock _readLock = new();
    private NftContext? _readContext;
    private FilterSettings? _settings;
    private Socket? _leaseSocket;
    private Socket? _leaseSocket6;
    private long _leaseFallbacks;
    private CtNetlinkSocket? _conntrack;

    /// <summary>The draining count's socket dump (<see cref="LiveConnections"/>); only under <see cref="_readLock"/>.</summary>
    private SockDiagSocket? _sockDiag;

    /// <summary>The counters' socket; only under <see cref="_readLock"/>.</summary>
    private NftObjSocket? _objects;

    /// <summary>Opens the context in the current namespace, or in <paramref name="networkNamespacePath"/> (lab tests).</summary>
    public NftablesFilter(string? networkNamespacePath = null)
    {
        _context = new NftContext(networkNamespacePath);
        _namespacePath = networkNamespacePath;
    }

    /// <summary>The settings given to <see cref="Install"/>, or null before.</summary>
    public FilterSettings? Settings => _settings;

    public void Install(FilterSettings settings)
    {
        _context.Run(NftRuleset.Install(settings));
        _settings = settings;
        // One lease datagram per flow table: to 127.0.0.1 for the ip table, to ::1 for the ip6 one.
        if (settings.Vip is not null)
        {
            _leaseSocket ??= _context.InNamespace(() => OpenLeaseSocket(IPAddress.Loopback));
        }
        if (settings.Vip6 is not null)
        {
            _leaseSocket6 ??= _context.InNamespace(() => OpenLeaseSocket(IPAddress.IPv6Loopback));
        }
    }

    public void Apply(BucketSet owned, BucketSet accepted, bool ownSlice, TimeSpan lease) =>
        _context.Run(NftRuleset.Apply(Installed, owned, accepted, ownSlice, lease));

    /// <inheritdoc/>
    public void MovedOut(IReadOnlyCollection<FlowTuple> flows, MovedFlowChange change)
    {
        string text = NftRuleset.MovedOut(Installed, flows, change);
        if (text.Length > 0)
        {
            _context.Run(text);
        }
    }

    /// <inheritdoc/>
    public ConntrackDeletes ForgetMoved(IReadOnlyCollection<FlowTuple> flows) => _context.InNamespace(() =>
    {
        try
        {
            _conntrack ??= CtNetlinkSocket.Open();
            return _conntrack.Delete(flows);
        }
        catch (IOException e)
        {
            throw new KernelFilterException($"deleting moved flows from conntrack: {e.Message}", e);
        }
    });

    /// <summary>
    /// Sends one marked datagram to 127.0.0.1:9; the lease rule of the output chain refreshes the
    /// lease and drops it, so send(2) fails with EPERM. A datagram that leaves was not taken by
    /// the rule: a set update that fails in the kernel ends the rule before its drop (seen once,
    /// at a 5 ms interval with late renewals; the kernel's reason was not established). The lease
    /// is then renewed by a transaction, which also flushes the set, and the fallback is counted.
    /// If the tables are gone the transaction fails and says so.
    /// </summary>
    public void RenewLease()
    {
        var settings = Installed;
        if (_leaseSocket is null && _leaseSocket6 is null)
        {
            throw new InvalidOperationException("Install the filter first.");
        }
        // One datagram per family's table (the ip6 one to ::1); either missed is renewed, both tables, by the transaction.
        if ((_leaseSocket is { } socket && !RenewedByPacket(socket)) | (_leaseSocket6 is { } socket6 && !RenewedByPacket(socket6)))
        {
            Interlocked.Increment(ref _leaseFallbacks);
            _context.Run(NftRuleset.RenewLease(settings, settings.LeaseTime));
        }
    }

    /// <summary>Sends one lease datagram: true when the lease rule took it (EPERM), false when it left.</summary>
    private static bool RenewedByPacket(Socket socket)
    {
        ReadOnlySpan<byte> payload = [0x4c];
        if (Interop.Netlink.send(socket.SafeHandle, payload, 1, 0) >= 0)
        {
            return false;
        }
        var errno = Marshal.GetLastPInvokeError();
        if (errno != EPERM)
        {
            throw new KernelFilterException($"renewing the lease: send to {socket.RemoteEndPoint}: {Errno.Name(errno)}");
        }
        return true;
    }

    /// <summary>
    /// Reads the counter objects over a NETLINK_NETFILTER socket of its own (<see cref="NftObjSocket"/>), opened in the
    /// filter's namespace: not libnftables, whose cache for <c>list counters</c> loads every set's elements, moved_away's
    /// too (about 200 ms at 20,000: docs/benchmarks.md#what-the-drained-nodes-l2bal-cpu-was). Callable from any thread;
    /// never holds up the daemon's loop, which changes the sets through the first context.
    /// </summary>
    public KernelCounters ReadCounters()
    {
        var s = Installed;
        Dictionary<(string Family, string Name), long> netdev;
        Dictionary<(string Family, string Name), long>? ip = null, ip6 = null;
        lock (_readLock)
        {
            try
            {
                _objects ??= ReadContext.InNamespace(NftObjSocket.Open);
                netdev = Keyed(_objects.Counters("netdev", s.TableName), "netdev");
                if (s.Vip is not null)
                {
                    ip = Keyed(_objects.Counters("ip", s.TableName), "ip");
                }
                if (s.Vip6 is not null)
                {
                    ip6 = Keyed(_objects.Counters("ip6", s.TableName), "ip6");
                }
            }
            catch (IOException e)
            {
                // A socket that failed once is opened again by the next read.
                _objects?.Dispose();
                _objects = null;
                throw new KernelFilterException($"reading the counters: {e.Message}", e);
            }
        }
        if (ip is null)
        {
            // An IPv6 VIP alone: the ip6 table's counters with the netdev ones are the totals; kernel.ipv6 its share, as beside IPv4.
            foreach (var (key, packets) in ip6!)
            {
                netdev[key] = packets;
            }
            return FromTables(netdev, "ip6", Interlocked.Read(ref _leaseFallbacks)) with { Ipv6 = FromTables(ip6, "ip6", 0) };
        }
        foreach (var (key, packets) in ip)
        {
            netdev[key] = packets;
        }

        var v4 = FromTables(netdev, "ip", Interlocked.Read(ref _leaseFallbacks));
        if (ip6 is null)
        {
            return v4;
        }
        var v6 = FromTables(ip6, "ip6", 0);
        // Totals over both families, by name (docs/status-json.md#kernel); the ip6 table's own beside them.
        return new KernelCounters(
            v4.AcceptedNew + v6.AcceptedNew, v4.AcceptedEstablished + v6.AcceptedEstablished, v4.AcceptedSlice + v6.AcceptedSlice,
            v4.DroppedNotOwnedEarly, v4.DroppedNotOwned + v6.DroppedNotOwned, v4.DroppedOtherSlice + v6.DroppedOtherSlice,
            v4.DroppedNoLease + v6.DroppedNoLease, v4.DroppedMidFlow + v6.DroppedMidFlow, v4.LeaseRenewals + v6.LeaseRenewals,
            v4.LeaseFallbacks, v4.DroppedSliceMidFlow + v6.DroppedSliceMidFlow, v4.DroppedStatelessNotOwned + v6.DroppedStatelessNotOwned)
        {
            DroppedMovedOut = v4.DroppedMovedOut + v6.DroppedMovedOut,
            AcceptedMovedIn = v4.AcceptedMovedIn + v6.AcceptedMovedIn,
            Ipv6 = v6,
        };
    }

    /// <summary>The counters of the netdev table and one family's flow table (<paramref name="ip"/>: "ip" or "ip6") in <paramref name="values"/>.</summary>
    private static KernelCounters FromTables(Dictionary<(string Family, string Name), long> values, string ip, long leaseFallbacks)
    {
        long Get(string family, string name) => values.GetValueOrDefault((family == "ip" ? ip : family, name));
        return new KernelCounters(
            AcceptedNew: Get("ip", NftRuleset.Counters.AcceptedNew),
            AcceptedEstablished: Get("ip", NftRuleset.Counters.AcceptedEstablished),
            AcceptedSlice: Get("ip", NftRuleset.Counters.AcceptedSlice),
            DroppedNotOwnedEarly: Get("netdev", NftRuleset.Counters.DroppedNotOwnedEarly),
            DroppedNotOwned: Get("ip", NftRuleset.Counters.DroppedNotOwned),
            DroppedOtherSlice: Get("netdev", NftRuleset.Counters.DroppedOtherSlice) + Get("ip", NftRuleset.Counters.DroppedOtherSlice),
            DroppedNoLease: Get("ip", NftRuleset.Counters.DroppedNoLease),
            DroppedMidFlow: Get("ip", NftRuleset.Counters.DroppedMidFlow),
            LeaseRenewals: Get("ip", NftRuleset.Counters.LeaseRenewed),
            LeaseFallbacks: leaseFallbacks,
            DroppedSliceMidFlow: Get("ip", NftRuleset.Counters.DroppedSliceMidFlow),
            DroppedStatelessNotOwned: Get("ip", NftRuleset.Counters.DroppedStatelessNotOwned),
            DroppedMovedOut: Get("ip", NftRuleset.Counters.DroppedMovedOut),
            AcceptedMovedIn: Get("ip", NftRuleset.Counters.AcceptedMovedIn));
    }

    /// <summary>Reads conntrack on the second context's thread (see <see cref="ReadCounters"/>): callable from any thread.</summary>
    public IReadOnlyDictionary<int, int> FlowsByBucket()
    {
        var s = Installed;
        lock (_readLock)
        {
            return ReadContext.InNamespace(() =>
            {
                // The sockets are read only when conntrack names a flow to the VIP past ESTABLISHED, and once.
                HashSet<(IPAddress, int, int)>? live = null;
                return ConntrackTable.Read(s.Vip, s.Buckets, NftRuleset.StatelessPorts(s), s.Vip6,
                    (client, clientPort, vipPort) => (live ??= LiveConnections(s)).Contains((client, clientPort, vipPort)));
            });
        }
    }

    /// <summary>
    /// The TCP connections to a VIP some process of the namespace still holds (sock_diag, states
    /// <see cref="SockDiagCodec.LiveStates"/>, an inode: not an orphan the kernel closes on its own), as (client address,
    /// client port, VIP port); under <see cref="_readLock"/>, in the namespace.
    /// </summary>
    private HashSet<(IPAddress, int, int)> LiveConnections(FilterSettings s)
    {
        var live = new HashSet<(IPAddress, int, int)>();
        try
        {
            _sockDiag ??= SockDiagSocket.Open();
            foreach (var family in new[] { Interop.Netlink.AF_INET, Interop.Netlink.AF_INET6 })
            {
                _sockDiag.Dump(family, SockDiagCodec.LiveStates, socket =>
                {
                    var local = Unmapped(socket.Local.Address);
                    if (socket.Inode != 0 && (local.Equals(s.Vip) || local.Equals(s.Vip6)))
                    {
                        live.Add((Unmapped(socket.Remote.Address), socket.Remote.Port, socket.Local.Port));
                    }
                });
            }
        }
        catch (IOException e)
        {
            throw new KernelFilterException($"reading the TCP sockets (sock_diag) for the draining count: {e.Message}", e);
        }
        return live;
    }

    private static IPAddress Unmapped(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    public void Remove()
    {
        if (_settings is { } s)
        {
            _context.Run(NftRuleset.Remove(s));
            _settings = null;
        }
    }

    /// <summary>Closes the context without <see cref="Remove"/>: the kernel deletes the owner tables with the socket.</summary>
    public void Dispose()
    {
        _leaseSocket?.Dispose();
        _leaseSocket6?.Dispose();
        _conntrack?.Dispose();
        lock (_readLock)
        {
            _objects?.Dispose();
            _sockDiag?.Dispose();
            _readContext?.Dispose();
        }
        _context.Dispose();
    }

    private static Socket OpenLeaseSocket(IPAddress loopback)
    {
        var socket = new Socket(loopback.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.SetRawSocketOption(SOL_SOCKET, SO_MARK, BitConverter.GetBytes(NftRuleset.LeaseRenewMark));
            socket.Connect(new IPEndPoint(loopback, NftRuleset.LeaseRenewPort));
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new KernelFilterException($"opening the lease socket (SO_MARK needs CAP_NET_ADMIN, and lo must be up): {e.SocketErrorCode}");
        }
    }

    /// <summary>A table's counters by (family, name), as <see cref="FromTables"/> takes them.</summary>
    private static Dictionary<(string Family, string Name), long> Keyed(Dictionary<string, long> packets, string family) =>
        packets.ToDictionary(p => (family, p.Key), p => p.Value);

    /// <summary>The second context, for reads from any thread; only under <see cref="_readLock"/>.</summary>
    private NftContext ReadContext => _readContext ??= new NftContext(_namespacePath);

    private FilterSettings Installed => _settings ?? throw new InvalidOperationException("Install the filter first.");
}
