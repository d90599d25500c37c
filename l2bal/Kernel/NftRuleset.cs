using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using L2Balance.Balancer.Cluster;

namespace L2Balance.Balancer.Kernel;

/// <summary>
/// Pure generator of the nft text (1.0.6 syntax) that implements docs/design.md#kernel-filter,
/// following the checked kernel mechanics (docs/design.md#kernel-mechanics). No I/O: <see cref="NftablesFilter"/>
/// feeds the text to libnftables, one buffer = one atomic transaction.
/// </summary>
/// <remarks>
/// Two tables, both <c>flags owner</c> (they vanish with the daemon's netlink socket and survive
/// <c>nft flush ruleset</c>):
/// netdev <c>{name}</c>: ingress at -500 makes cluster-MAC frames PACKET_HOST and drops early
/// (before conntrack) every packet whose bucket is neither owned nor draining; in unicast-flood
/// mode an egress guard drops any frame leaving with the cluster MAC as source.
/// ip <c>{name}</c>: prerouting at -150 (after conntrack at -200) accepts established flows
/// whatever their bucket, and new flows only while the lease lives and only for owned buckets,
/// TCP only on a bare SYN; output drops ICMP port-unreachable from the VIP and turns the daemon's
/// marked lease datagrams into lease refreshes (packet path: no netlink transaction per renewal).
/// Each chain puts its common case first, because every rule a packet meets costs throughput: a
/// frame of an established flow in an owned bucket meets two ingress rules and two prerouting
/// rules, and what the node sends over TCP one output rule (docs/benchmarks.md#filter-rule-order).
/// Ports with an affinity rule (<see cref="FilterSettings.Affinity"/>) add one map rule to each chain
/// and a chain per mode; without rules the text is what it was before affinity existed.
/// </remarks>
internal static class NftRuleset
{
    /// <summary>Name of the netdev set of owned ∪ draining buckets (passes the early drop). "accept" is an nft keyword.</summary>
    public const string AcceptSet = "accept_buckets";

    /// <summary>Name of the ip set of owned buckets (new flows accepted).</summary>
    public const string OwnedSet = "owned";

    /// <summary>
    /// Name of the set (one in each table) holding this node's port slice while it may take it:
    /// empty while the node yields to a conflict (another node with its id or other cluster
    /// settings), whose slice overlaps its peers' (<see cref="Apply"/>).
    /// </summary>
    public const string SliceSet = "own_slice";

    /// <summary>Name of the ip one-element timeout set whose element is the ownership lease.</summary>
    public const string LeaseSet = "lease";

    /// <summary>The lease element's key (the mark value the lease rule tests).</summary>
    public const int LeaseKey = 1;

    /// <summary>
    /// Socket mark (SO_MARK, which needs CAP_NET_ADMIN) of the daemon's lease datagrams, "L2BL":
    /// the output chain turns such a datagram to <see cref="LeaseRenewPort"/> on 127.0.0.1 into a
    /// refresh of the lease element and drops it (the sender sees EPERM).
    /// </summary>
    public const uint LeaseRenewMark = 0x4c32424c;

    /// <summary>
    /// The nflog group (`log group`) of the port-unreachables that wake a probe, "L2": fixed, so
    /// that the daemon's socket and the rule agree without configuration (docs/design.md#output).
    /// </summary>
    public const ushort PortUnreachableLogGroup = 0x4c32;

    /// <summary>
    /// SO_MARK of a socket l2proxy restored from another node ("L2" 0x19, issue 19): the new node accepts
    /// packets of its flow ahead of the owner and slice checks (docs/design.md#migration-filter).
    /// </summary>
    public const uint MigrationMark = 0x4c320019;

    /// <summary>Conntrack mark of a flow that moved away: dropped here until conntrack forgets it; not counted as draining.</summary>
    public const uint MovedFlowMark = 0x20000;

    /// <summary>Conntrack mark of a flow restored here (set by its marked socket's packets): once the socket is gone, its packets drop, never a RST.</summary>
    public const uint MovedInFlowMark = 0x40000;

    /// <summary>Name of the ip set of inbound 5-tuples of flows moving away from this node (dropped; taken out again if their session stays).</summary>
    public const string MovedOutSet = "moved_out";

    /// <summary>Name of the ip set of inbound 5-tuples of flows whose move was confirmed: their next packet marks them in conntrack for good.</summary>
    public const string MovedAwaySet = "moved_away";

    /// <summary>Name of the netdev set of inbound 5-tuples of flows restored here, learned from their marked sockets' frames at egress.</summary>
    public const string MovedInSet = "moved_in";

    /// <summary>
    /// How long a <see cref="MovedOutSet"/> element lives (never refreshed): a transient state the runner resolves on every path;
    /// this bounds only what the kernel refused to take out, and stays far above a batch's life (requests time out at 30 s).
    /// </summary>
    public static readonly TimeSpan MovedOutTimeout = TimeSpan.FromMinutes(5);

    /// <summary>How long a <see cref="MovedAwaySet"/> element lives: the drop of a moved flow whose conntrack entry is not marked.</summary>
    public static readonly TimeSpan MovedAwayTimeout = TimeSpan.FromDays(1);

    /// <summary>
    /// Meta mark a bare SYN carries through the moved-flow rules and the established accept of ip prerouting (migration only):
    /// a new connection on a tuple that moved is judged by the owner rules like any other (docs/design.md#migration-filter).
    /// </summary>
    public const uint BareSynMark = 0x4c320119;

    /// <summary><see cref="MovedInSet"/> for IPv6 flows (one netdev table, one key type per set; docs/design.md#migration-filter).</summary>
    public const string MovedIn6Set = "moved_in6";

    /// <summary>How long a <see cref="MovedInSet"/> element lives without an outgoing frame of its socket.</summary>
    public static readonly TimeSpan MovedInTimeout = TimeSpan.FromHours(1);

    /// <summary>Largest number of elements in each moved-flow set (a set of fixed size: a full set refuses adds, never grows).</summary>
    public const int MovedSetSize = 65536;

    /// <summary>The key of the moved-flow sets of a family (<c>ip</c>, <c>ip6</c>): protocol, source address and port, destination address and port.</summary>
    private static string FlowKeyType(string table) =>
        table == "ip6" ? "inet_proto . ipv6_addr . inet_service . ipv6_addr . inet_service" : "inet_proto . ipv4_addr . inet_service . ipv4_addr . inet_service";

    /// <summary>The inbound 5-tuple of a packet to the VIP, and (reversed) of a packet this node sends, in a family's words.</summary>
    private static string InboundKey(string table) => $"meta l4proto . {table} saddr . th sport . {table} daddr . th dport";

    private static string OutboundKey(string table) => $"meta l4proto . {table} daddr . th dport . {table} saddr . th sport";

    /// <summary>The netdev set of flows restored here for a family's table.</summary>
    private static string MovedIn(string table) => table == "ip6" ? MovedIn6Set : MovedInSet;

    /// <summary>UDP port of the lease datagrams (discard).</summary>
    public const int LeaseRenewPort = 9;

    /// <summary>Conntrack mark of a flow accepted as new: <c>FlowMarkBase | bucket</c> (0 means untagged).</summary>
    public const uint FlowMarkBase = 0x10000;

    /// <summary>Largest B: the bucket must fit below <see cref="FlowMarkBase"/> in the conntrack mark.</summary>
    public const int MaxBuckets = 0x10000;

    /// <summary>Priority of the netdev ingress chain: first in ingress.</summary>
    public const int IngressPriority = -500;

    /// <summary>Priority of the ip prerouting chain: after conntrack (-200) and defragmentation (-400).</summary>
    public const int PreroutingPriority = -150;

    /// <summary>Named counters (one per reason, docs/conventions.md §6) and the table family each lives in.</summary>
    internal static class Counters
    {
        public const string AcceptedNew = "accepted_new";
        public const string AcceptedEstablished = "accepted_established";
        public const string AcceptedSlice = "accepted_slice";
        public const string DroppedNotOwnedEarly = "dropped_not_owned_early";
        public const string DroppedNotOwned = "dropped_not_owned";
        public const string DroppedOtherSlice = "dropped_other_slice";
        public const string DroppedNoLease = "dropped_no_lease";

        /// <summary>New flows to a port that is not one of the VIP's services (only with --service).</summary>
        public const string DroppedNotService = "dropped_not_service";
        public const string DroppedMidFlow = "dropped_mid_flow";

        /// <summary>TCP to the own slice that is neither a known flow nor a bare SYN (docs/design.md#single-ip-mode).</summary>
        public const string DroppedSliceMidFlow = "dropped_slice_mid_flow";

        /// <summary>UDP to a port of affinity none in a bucket not owned: never drained (docs/design.md#per-port-affinity).</summary>
        public const string DroppedStatelessNotOwned = "dropped_stateless_not_owned";
        public const string DroppedNotIpv4 = "dropped_not_ipv4";
        public const string DroppedPortUnreachable = "dropped_port_unreachable";
        public const string DroppedClusterMacSource = "dropped_cluster_mac_source";
        public const string LeaseRenewed = "lease_renewed";

        /// <summary>Packets of flows that moved away from this node (moved_out, or the conntrack mark of one).</summary>
        public const string DroppedMovedOut = "dropped_moved_out";

        /// <summary>Packets of flows whose local socket carries <see cref="MigrationMark"/>, accepted ahead of the owner checks.</summary>
        public const string AcceptedMovedIn = "accepted_moved_in";

        /// <summary>Netdev: frames of restored flows passed to ip prerouting although their bucket or slice is another node's.</summary>
        public const string PassedMovedIn = "passed_moved_in";
    }

    /// <summary>
    /// The install transaction: idempotent (each table is first created empty and deleted, so a
    /// leftover of this context goes; another live process's owner table makes it fail, EPERM), then both tables with empty sets. Nothing
    /// new is accepted until <see cref="Apply"/> fills the sets and the lease.
    /// </summary>
    public static string Install(FilterSettings settings)
    {
        Validate(settings);
        var s = settings;
        string cmac = s.ClusterMac.ToString();
        string hash = Jhash(s);
        string all = s.AllSlices.ToString();
        var t = new StringBuilder();
        t.Append(DeletePairs(s));

        t.Append(CultureInfo.InvariantCulture, $"table netdev {s.TableName} {{\n");
        t.Append("\tflags owner;\n");
        t.Append(CultureInfo.InvariantCulture, $"\tcomment \"l2bal early filter on {s.Interface}: buckets neither owned nor draining never reach conntrack\";\n");
        t.Append(CultureInfo.InvariantCulture, $"\tset {AcceptSet} {{ type mark; flags interval; comment \"buckets owned or draining\"; }}\n");
        SliceSetDeclaration(t);
        if (s.Migrate)
        {
            if (s.Vip is not null)
            {
                MovedSetDeclaration(t, MovedInSet, "inbound 5-tuples of flows restored here, learned at egress from their marked sockets", "ip");
            }
            if (s.Vip6 is not null)
            {
                MovedSetDeclaration(t, MovedIn6Set, "inbound IPv6 5-tuples of flows restored here, learned at egress from their marked sockets", "ip6");
            }
            Counter(t, Counters.PassedMovedIn, "frames of flows restored here passed on to ip prerouting");
        }
        Counter(t, Counters.DroppedNotIpv4, "non-IPv4 frames to the cluster MAC");
        Counter(t, Counters.DroppedOtherSlice, "packets to another node's port slice (L2)");
        Counter(t, Counters.DroppedNotOwnedEarly, "packets whose bucket is neither owned nor draining");
        if (s.Mode == MacMode.UnicastFlood)
        {
            Counter(t, Counters.DroppedClusterMacSource, "frames leaving with the cluster MAC as source");
        }

        t.Append("\tchain ingress {\n");
        t.Append(CultureInfo.InvariantCulture, $"\t\ttype filter hook ingress device \"{s.Interface}\" priority {IngressPriority}; policy accept;\n");
        Rule(t, $"ether daddr != {cmac} accept", "not to the cluster MAC: not ours to judge");
        if (s.Affinity.Count > 0 && s.Vip is not null)
        {
            Rule(t, $"meta protocol ip ip frag-off & 0x1fff == 0 meta l4proto . th dport vmap {{ {AffinityMap(s)} }}",
                "ports with an affinity rule: bucket by their key (a later fragment has no port: it goes on)");
        }
        if (s.Vip is not null)
        {
            Rule(t, $"meta protocol ip meta mark set {hash} meta mark @{AcceptSet} meta mark set 0x0 meta pkttype set host accept",
                "common case, one rule: IPv4 in a bucket owned or draining goes on as PACKET_HOST (seed explicit: nft draws one per rule)");
        }
        if (s.Vip6 is not null)
        {
            Rule(t, $"meta protocol ip6 jump {Ingress6Chain}", "IPv6 (the IPv6 VIP): judged in a chain of its own, after IPv4's common case");
        }
        if (s.Vip is null)
        {
            // An IPv6 VIP alone (docs/design.md#an-ipv6-vip-alone): no ip table to send IPv4 or ARP to.
            Rule(t, $"counter name \"{Counters.DroppedNotIpv4}\" drop", "no IPv4 VIP: frames other than IPv6 (which ended in its chain) have no table");
            t.Append("\t}\n");
        }
        else
        {
            Ingress4Tail(t, s);
        }
        if (s.Vip6 is not null)
        {
            Ingress6(t, s);
        }
        if (s.Mode == MacMode.UnicastFlood || s.Migrate)
        {
            t.Append("\tchain egress {\n");
            t.Append(CultureInfo.InvariantCulture, $"\t\ttype filter hook egress device \"{s.Interface}\" priority 0; policy accept;\n");
            if (s.Mode == MacMode.UnicastFlood)
            {
                Rule(t, $"ether saddr {cmac} counter name \"{Counters.DroppedClusterMacSource}\" drop", "a switch that learns the cluster MAC stops flooding it: never send from it");
            }
            foreach (var table in s.Migrate ? FlowFamilies(s) : [])
            {
                Rule(t, $"meta mark 0x{MigrationMark:x} meta protocol {table} update @{MovedIn(table)} {{ {OutboundKey(table)} timeout {Seconds(MovedInTimeout)}s }}",
                    "a frame of a restored socket (SO_MARK): its flow's inbound frames pass ingress from now on");
            }
            t.Append("\t}\n");
        }

        t.Append("}\n");

        if (s.Vip is not null)
        {
            FlowTable(t, s, Family.Ipv4(s));
        }
        if (s.Vip6 is not null)
        {
            FlowTable(t, s, Family.Ipv6(s));
        }
        return t.ToString();
    }

    /// <summary>
    /// The flow table of one family (<c>table ip</c> for the IPv4 VIP, <c>table ip6</c> for the IPv6 one): the same rules,
    /// sets and counter names in each, so one ownership serves both (docs/design.md#the-ip6-filter).
    /// </summary>
    private static void FlowTable(StringBuilder t, FilterSettings s, Family f)
    {
        bool migrate = s.Migrate;
        string inbound = InboundKey(f.Table), outbound = OutboundKey(f.Table);
        string vip = f.Vip.ToString();
        string all = s.AllSlices.ToString();
        string hash = Jhash(s, AffinityMode.Single, f.AddressFamily);
        t.Append(CultureInfo.InvariantCulture, $"table {f.Table} {s.TableName} {{\n");
        t.Append("\tflags owner;\n");
        t.Append(CultureInfo.InvariantCulture, $"\tcomment \"l2bal flow filter for {vip}: established flows stay, new flows by owned bucket under the lease\";\n");
        t.Append(CultureInfo.InvariantCulture, $"\tset {OwnedSet} {{ type mark; flags interval; comment \"buckets owned: new flows accepted\"; }}\n");
        t.Append(CultureInfo.InvariantCulture, $"\tset {LeaseSet} {{ type mark; flags dynamic, timeout; comment \"ownership lease: one element, renewed by the daemon\"; }}\n");
        SliceSetDeclaration(t);
        Counter(t, Counters.AcceptedEstablished, "packets of established or related flows");
        Counter(t, Counters.AcceptedSlice, "packets to the own port slice");
        Counter(t, Counters.DroppedOtherSlice, "packets to another node's port slice (after reassembly)");
        Counter(t, Counters.DroppedNoLease, "new flows refused: the lease expired (hung daemon)");
        Counter(t, Counters.DroppedNotOwned, "new flows refused: bucket not owned");
        Counter(t, Counters.AcceptedNew, "new flows accepted in an owned bucket");
        Counter(t, Counters.DroppedMidFlow, "mid-flow packets of flows this node does not know");
        Counter(t, Counters.DroppedSliceMidFlow, "TCP to the own slice neither of a known flow nor a bare SYN");
        var stateless = StatelessPorts(s);
        if (stateless.Count > 0)
        {
            Counter(t, Counters.DroppedStatelessNotOwned, "UDP to a port of affinity none in a bucket not owned (never drained)");
        }
        if (s.Services.Count > 0)
        {
            Counter(t, Counters.DroppedNotService, "new flows to a port that is not a service of the VIP");
        }
        Counter(t, Counters.DroppedPortUnreachable, "ICMP port-unreachable from the VIP suppressed");
        Counter(t, Counters.LeaseRenewed, "lease renewals by the daemon's marked datagrams");
        if (migrate)
        {
            MovedSetDeclaration(t, MovedOutSet, "inbound 5-tuples of flows moving away: dropped here", f.Table);
            MovedSetDeclaration(t, MovedAwaySet, "inbound 5-tuples of flows moved away: marked in conntrack, dropped", f.Table);
            Counter(t, Counters.DroppedMovedOut, "packets of flows that moved away from this node");
            Counter(t, Counters.AcceptedMovedIn, "packets of flows whose socket was restored here (migration mark)");
        }
        t.Append("\tchain prerouting {\n");
        t.Append(CultureInfo.InvariantCulture, $"\t\ttype filter hook prerouting priority {PreroutingPriority}; policy accept;\n");
        Rule(t, $"{f.Table} daddr != {vip} accept", "not to the VIP");
        if (stateless.Count > 0)
        {
            Rule(t, $"iif != \"lo\" udp dport {{ {string.Join(", ", stateless)} }} jump {StatelessChain}",
                "UDP to an affinity-none port follows its bucket, established or not: else two nodes answer a reused source port");
        }
        if (migrate)
        {
            // A bare SYN on a moved tuple is a new connection (a reused source port): tagged, it passes the moved drops and the
            // established accept (conntrack ignores a SYN on an established entry: sIG) and meets the owner rules.
            string notSyn = $"meta mark != 0x{BareSynMark:x}";
            Rule(t, $"tcp flags & (fin|syn|rst|ack) == syn meta mark set 0x{BareSynMark:x}", "a bare SYN: a new connection, judged by the owner rules below also on a tuple that moved");
            Rule(t, $"tcp flags & (fin|syn|rst|ack) == syn|ack ct mark {{ 0x0, 0x{MovedFlowMark:x} }} socket transparent 0 ct mark set 0x0 delete @{MovedAwaySet} {{ {inbound} }}",
                "a SYN-ACK to a local socket: a connection this node opened, its peer accepted it (a live old one answers an ACK)");
            Rule(t, $"ct mark 0x{MovedFlowMark:x} {notSyn} counter name \"{Counters.DroppedMovedOut}\" drop", "a flow that moved away (conntrack keeps the mark across restarts of l2bal): never this node's again");
            Rule(t, $"{inbound} @{MovedAwaySet} {notSyn} ct mark set 0x{MovedFlowMark:x} counter name \"{Counters.DroppedMovedOut}\" drop",
                "a flow whose move was confirmed: marked in conntrack, so it stays away after l2bal restarts");
            Rule(t, $"{inbound} @{MovedOutSet} counter name \"{Counters.DroppedMovedOut}\" drop",
                "a flow moving away, bare SYNs too: its input stops here before the socket sees it (taken out again if it stays)");
            Rule(t, $"ct mark 0x{MovedInFlowMark:x} socket mark 0x{MigrationMark:x} meta mark set 0x0 counter name \"{Counters.AcceptedMovedIn}\" accept",
                "a flow restored here whose socket lives (a SYN on it: the socket's challenge ACK)");
            Rule(t, $"ct mark 0x{MovedInFlowMark:x} {notSyn} counter name \"{Counters.DroppedMovedOut}\" drop",
                "a flow restored here whose socket is gone (a silent copy never sent Go, its process killed): silent drop, never a RST");
            Rule(t, $"ct state established,related {notSyn} counter name \"{Counters.AcceptedEstablished}\" accept", "flows this node holds stay here whatever their bucket");
            Rule(t, $"meta mark 0x{BareSynMark:x} meta mark set 0x0", "a bare SYN goes on to the new-flow rules untagged");
        }
        else
        {
            Rule(t, $"ct state established,related counter name \"{Counters.AcceptedEstablished}\" accept", "flows this node holds stay here whatever their bucket");
        }
        Rule(t, "iif \"lo\" accept", "from this node itself (health probe, local clients): never balanced");
        if (f.AddressFamily == AddressFamily.InterNetworkV6)
        {
            Rule(t, "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept", "ND to the VIP (NUD probes): l2bal answers from its packet socket, the kernel ignores it (the VIP is on lo)");
        }
        if (migrate)
        {
            Rule(t, $"meta l4proto {{ tcp, udp }} socket mark 0x{MigrationMark:x} ct mark set 0x{MovedInFlowMark:x} counter name \"{Counters.AcceptedMovedIn}\" accept",
                "a flow restored here: its socket carries the migration mark; conntrack takes it up mid-stream");
        }
        Rule(t, $"tcp dport @{SliceSet} tcp flags & (fin|syn|rst|ack) != syn counter name \"{Counters.DroppedSliceMidFlow}\" drop",
            "own slice, flow unknown here (a moved flow, one from before a restart): silent drop, never a RST");
        if (migrate)
        {
            Rule(t, $"tcp dport @{SliceSet} tcp flags & (fin|syn|rst|ack) == syn ct mark set 0x0 delete @{MovedAwaySet} {{ {inbound} }}",
                "a new connection to the own slice (accepted next): a tuple that moved before is this node's again");
        }
        Rule(t, $"meta l4proto {{ tcp, udp }} th dport @{SliceSet} counter name \"{Counters.AcceptedSlice}\" accept", "own port slice");
        Rule(t, $"meta l4proto {{ tcp, udp }} th dport {all} counter name \"{Counters.DroppedOtherSlice}\" drop", "another node's port slice");
        Rule(t, $"meta mark set 0x{LeaseKey:x} meta mark != @{LeaseSet} counter name \"{Counters.DroppedNoLease}\" drop", "new flows only while the lease lives (tested before the mark carries the bucket)");
        Rule(t, $"meta mark set {hash}", "bucket of the source address");
        if (s.Affinity.Count > 0)
        {
            Rule(t, $"meta l4proto . th dport vmap {{ {AffinityMap(s)} }}", "ports with an affinity rule: the bucket of their key instead");
        }
        Rule(t, $"meta mark != @{OwnedSet} counter name \"{Counters.DroppedNotOwned}\" drop", "new flow in a bucket not owned");
        if (s.Services.Count > 0)
        {
            var services = string.Join(", ", s.Services.Select(v => $"{v.Protocol} . {v.Port}"));
            Rule(t, $"meta l4proto {{ tcp, udp }} meta l4proto . th dport != {{ {services} }} counter name \"{Counters.DroppedNotService}\" drop",
                "new flow to a port the VIP does not offer (--service): silent drop, never a RST");
        }
        if (migrate)
        {
            Rule(t, $"tcp flags & (fin|syn|rst|ack) == syn delete @{MovedAwaySet} {{ {inbound} }}",
                "a new connection (accepted next; its conntrack mark becomes the bucket's): a tuple that moved before is this node's again");
        }
        Rule(t, $"tcp flags & (fin|syn|rst|ack) == syn ct mark set meta mark or 0x{FlowMarkBase:x} meta mark set 0x0 counter name \"{Counters.AcceptedNew}\" accept", "new TCP flow on a bare SYN: conntrack mark carries the bucket");
        Rule(t, $"meta l4proto {{ udp, {f.Icmp} }} ct mark set meta mark or 0x{FlowMarkBase:x} meta mark set 0x0 counter name \"{Counters.AcceptedNew}\" accept", "new UDP or ICMP flow: conntrack mark carries the bucket");
        Rule(t, $"counter name \"{Counters.DroppedMidFlow}\" drop", "mid-flow packet of a flow this node does not know: silent drop, never a RST");
        t.Append("\t}\n");
        foreach (var mode in Modes(s))
        {
            t.Append(CultureInfo.InvariantCulture, $"\tchain {AffinityChain(mode)} {{\n");
            Rule(t, $"meta mark set {Jhash(s, mode, f.AddressFamily)}", $"bucket of a flow to a port of affinity {AffinityRule.ModeName(mode)}");
            t.Append("\t}\n");
        }
        if (stateless.Count > 0)
        {
            t.Append(CultureInfo.InvariantCulture, $"\tchain {StatelessChain} {{\n");
            Rule(t, $"meta mark set {Jhash(s, AffinityMode.None, f.AddressFamily)} meta mark @{OwnedSet} meta mark set 0x0 return", "bucket owned: on to the usual rules");
            Rule(t, $"meta mark set 0x0 counter name \"{Counters.DroppedStatelessNotOwned}\" drop", "bucket not owned (moved, or this node unhealthy or draining): silent drop");
            t.Append("\t}\n");
        }
        t.Append("\tchain output {\n");
        t.Append("\t\ttype filter hook output priority 0; policy accept;\n");
        if (migrate)
        {
            Rule(t, $"meta mark 0x{MigrationMark:x} ct mark set 0x{MovedInFlowMark:x} delete @{MovedAwaySet} {{ {outbound} }} delete @{MovedOutSet} {{ {outbound} }}",
                "a restored socket sends: a flow that moved away and came back is this node's again");
        }
        Rule(t, "meta l4proto tcp accept", "TCP leaves as it is: one rule for the bulk of what this node sends");
        long leaseMs = LeaseMilliseconds(s.LeaseTime);
        Rule(t, $"meta mark 0x{LeaseRenewMark:x} {f.Table} daddr {f.Loopback} udp dport {LeaseRenewPort} meta mark set 0x{LeaseKey:x} update @{LeaseSet} {{ meta mark timeout {leaseMs}ms }} counter name \"{Counters.LeaseRenewed}\" drop",
            "the daemon's lease datagram (SO_MARK needs CAP_NET_ADMIN): refresh the lease, deliver nothing");
        if (s.Wakes.Count > 0 && f.AddressFamily == AddressFamily.InterNetwork)
        {
            // @th,64: the quoted IPv4 header (no options), @th,136 its protocol, @th,240 the quoted UDP destination port.
            Rule(t, $"oifname != \"lo\" ip saddr {vip} icmp type destination-unreachable icmp code port-unreachable @th,64,8 0x45 @th,136,8 17 @th,240,16 {{ {string.Join(", ", s.Wakes)} }} log group {PortUnreachableLogGroup} snaplen {Health.NflogCodec.SnapLength} counter name \"{Counters.DroppedPortUnreachable}\" drop",
                "a probed UDP service refused a datagram: tell the probe now (the probe still decides), then as below");
        }
        Rule(t, $"oifname != \"lo\" {f.Table} saddr {vip} {f.IcmpHeader} type destination-unreachable {f.IcmpHeader} code port-unreachable counter name \"{Counters.DroppedPortUnreachable}\" drop",
            "no node sends an ICMP error for another node's flow; one to this node itself (the dns:// probe) is its own");
        t.Append("\t}\n");
        t.Append("}\n");
    }

    /// <summary>
    /// The per-change transaction: replaces the bucket sets and the port-slice sets and renews the
    /// lease, atomically. <paramref name="owned"/> must be a subset of <paramref name="accepted"/>
    /// (owned ∪ draining); <paramref name="ownSlice"/>: whether this node takes its port slice.
    /// </summary>
    public static string Apply(FilterSettings settings, BucketSet owned, BucketSet accepted, bool ownSlice, TimeSpan lease)
    {
        Validate(settings);
        ArgumentNullException.ThrowIfNull(owned);
        ArgumentNullException.ThrowIfNull(accepted);
        CheckCapacity(settings, owned, nameof(owned));
        CheckCapacity(settings, accepted, nameof(accepted));
        foreach (int b in owned.Buckets())
        {
            if (!accepted.Contains(b))
            {
                throw new ArgumentException($"Owned bucket {b} is not in the accepted set: its new flows would be dropped early.", nameof(accepted));
            }
        }

        var t = new StringBuilder();
        foreach (var family in FlowFamilies(settings))
        {
            ReplaceSet(t, $"{family} {settings.TableName} {OwnedSet}", owned);
        }
        ReplaceSet(t, $"netdev {settings.TableName} {AcceptSet}", accepted);
        foreach (var family in (string[])["netdev", .. FlowFamilies(settings)])
        {
            t.Append(CultureInfo.InvariantCulture, $"flush set {family} {settings.TableName} {SliceSet}\n");
            if (ownSlice)
            {
                t.Append(CultureInfo.InvariantCulture, $"add element {family} {settings.TableName} {SliceSet} {{ {settings.OwnSlice} }}\n");
            }
        }
        t.Append(RenewLease(settings, lease));
        return t.ToString();
    }

    /// <summary>
    /// Grants the lease in a transaction: <c>flush set</c> + <c>add element … timeout</c>. Checked
    /// in the lab: this refreshes the timeout, works when the element has expired or never existed,
    /// whereas re-adding an existing element keeps its old expiry and <c>delete element</c> of an
    /// absent one fails the whole transaction. Part of every <see cref="Apply"/>; between changes
    /// the daemon renews through the packet path instead (lease rule of the output chain).
    /// </summary>
    public static string RenewLease(FilterSettings settings, TimeSpan lease)
    {
        Validate(settings);
        long ms = LeaseMilliseconds(lease);
        return string.Concat(FlowFamilies(settings).Select(family => string.Create(CultureInfo.InvariantCulture,
            $"flush set {family} {settings.TableName} {LeaseSet}\nadd element {family} {settings.TableName} {LeaseSet} {{ 0x{LeaseKey:x} timeout {ms}ms }}\n")));
    }

    /// <summary>The families of the flow tables installed: <c>ip</c> with an IPv4 VIP, <c>ip6</c> with an IPv6 one, in that order.</summary>
    public static IReadOnlyList<string> FlowFamilies(FilterSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return (settings.Vip, settings.Vip6) switch
        {
            (null, _) => ["ip6"],
            (_, null) => ["ip"],
            _ => ["ip", "ip6"],
        };
    }

    /// <summary>
    /// The moved-flow sets for <paramref name="flows"/>: <see cref="MovedFlowChange.Moving"/> puts them in
    /// <see cref="MovedOutSet"/>; <see cref="MovedFlowChange.Stayed"/> takes them out again;
    /// <see cref="MovedFlowChange.Moved"/> puts them in <see cref="MovedAwaySet"/> and out of
    /// <see cref="MovedOutSet"/>. Taking out adds first: deleting an absent element (expired) would
    /// fail the whole transaction, adding an existing one changes nothing.
    /// </summary>
    public static string MovedOut(FilterSettings settings, IReadOnlyCollection<FlowTuple> flows, MovedFlowChange change)
    {
        Validate(settings);
        ArgumentNullException.ThrowIfNull(flows);
        if (!settings.Migrate)
        {
            throw new InvalidOperationException("Moved flows need the migration rules (--migrate).");
        }
        if (flows.Count == 0)
        {
            return string.Empty;
        }

        string timeout = string.Create(CultureInfo.InvariantCulture, $" timeout {Seconds(MovedOutTimeout)}s");
        var t = new StringBuilder();
        // One group per family, each in its own table's sets (IPv4 first, so an IPv4-only batch reads as before).
        foreach (var group in flows.GroupBy(f => f.Source.AddressFamily).OrderBy(g => g.Key == AddressFamily.InterNetworkV6))
        {
            string table = group.Key == AddressFamily.InterNetworkV6 ? "ip6" : "ip";
            if (!FlowFamilies(settings).Contains(table))
            {
                throw new ArgumentException($"No {table} table for the moved flow {group.First()}: its VIP is not served.", nameof(flows));
            }
            string set = $"{table} {settings.TableName} {MovedOutSet}";
            string elements = string.Join(", ", group.Select(f => f.NftElement()));
            string added = string.Join(", ", group.Select(f => f.NftElement() + timeout));
            if (change == MovedFlowChange.Moved)
            {
                string away = string.Create(CultureInfo.InvariantCulture, $" timeout {Seconds(MovedAwayTimeout)}s");
                t.Append(CultureInfo.InvariantCulture, $"add element {table} {settings.TableName} {MovedAwaySet} {{ {string.Join(", ", group.Select(f => f.NftElement() + away))} }}\n");
            }
            t.Append(CultureInfo.InvariantCulture, $"add element {set} {{ {added} }}\n");
            if (change != MovedFlowChange.Moving)
            {
                t.Append(CultureInfo.InvariantCulture, $"delete element {set} {{ {elements} }}\n");
            }
        }
        return t.ToString();
    }

    /// <summary>Deletes both tables; idempotent (a missing table is created then deleted).</summary>
    public static string Remove(FilterSettings settings)
    {
        Validate(settings);
        return DeletePairs(settings);
    }

    /// <summary>
    /// <c>table … { flags owner; }</c> + <c>delete table …</c> per family: deletes the table whether
    /// or not it exists. The pair must carry the owner flag: on an existing owner table a plain
    /// <c>table …</c> asks the kernel to clear the flag, which it refuses (EOPNOTSUPP, seen in the lab).
    /// </summary>
    private static string DeletePairs(FilterSettings s)
    {
        string table = s.TableName;
        return string.Concat(((string[])["netdev", .. FlowFamilies(s)]).Select(family =>
            string.Create(CultureInfo.InvariantCulture, $"table {family} {table} {{ flags owner; }}\ndelete table {family} {table}\n")));
    }

    /// <summary>An interval-set element list, <c>0-333, 335, 337-341</c>; empty for an empty set.</summary>
    public static string Elements(BucketSet buckets)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        return string.Join(", ", buckets.ToRanges().Select(r => r.Low == r.High
            ? r.Low.ToString(CultureInfo.InvariantCulture)
            : string.Create(CultureInfo.InvariantCulture, $"{r.Low}-{r.High}")));
    }

    private static long LeaseMilliseconds(TimeSpan lease)
    {
        long ms = (long)Math.Ceiling(lease.TotalMilliseconds);
        ArgumentOutOfRangeException.ThrowIfLessThan(ms, 1, nameof(lease));
        return ms;
    }

    private static string Jhash(FilterSettings s, AffinityMode mode = AffinityMode.Single, AddressFamily family = AddressFamily.InterNetwork) =>
        string.Create(CultureInfo.InvariantCulture, $"jhash {HashKey(mode, family)} mod {s.Buckets} seed 0x{s.Seed:x}");

    /// <summary>
    /// The hash key of an affinity mode for a table of <paramref name="family"/>, the one place that
    /// spells it (docs/design.md#buckets-and-the-hash: the bytes the kernel hashes; BucketHash mirrors them).
    /// </summary>
    public static string HashKey(AffinityMode mode, AddressFamily family)
    {
        if (family == AddressFamily.InterNetworkV6)
        {
            return mode switch
            {
                AffinityMode.Single => "ip6 saddr",
                AffinityMode.None => "ip6 saddr . th sport",
                AffinityMode.Network => "ip6 saddr & ffff:ffff:ffff:ff00::",
                _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown affinity mode"),
            };
        }

        if (family != AddressFamily.InterNetwork)
        {
            throw new ArgumentException($"No hash key for {family}: the filter hashes IPv4 and IPv6 sources.", nameof(family));
        }

        return mode switch
        {
            AffinityMode.Single => "ip saddr",
            AffinityMode.None => "ip saddr . th sport",
            AffinityMode.Network => "ip saddr & 255.255.255.0",
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown affinity mode"),
        };
    }

    /// <summary>The rest of the netdev ingress chain after the common cases, with an IPv4 VIP: ARP, other families, fragments, ICMP, slices.</summary>
    private static void Ingress4Tail(StringBuilder t, FilterSettings s)
    {
        Rule(t, "meta mark set 0x0 meta pkttype set host", "other cluster-MAC frames: no bucket left in the mark; for this host (TCP drops multicast, ip_rcv otherhost)");
        Rule(t, "ether type arp accept", "ARP to the cluster MAC (unicast NUD probes): l2bal answers");
        Rule(t, $"meta protocol != ip counter name \"{Counters.DroppedNotIpv4}\" drop", s.Vip6 is null ? "the VIP is IPv4 only" : "neither IPv4 nor IPv6 (IPv6 ended in its chain)");
        Rule(t, "ip frag-off & 0x3fff != 0 accept", "fragments: judged after reassembly in ip prerouting");
        Rule(t, "meta l4proto icmp accept", "ICMP: errors judged by conntrack (related), echo by bucket in ip prerouting");
        IngressSlicesAndEarlyDrop(t, s, "ip");
        IngressAffinityChains(t, s, AddressFamily.InterNetwork);
    }

    /// <summary>Name of the netdev chain that judges IPv6 frames to the cluster MAC (only with an IPv6 VIP).</summary>
    public const string Ingress6Chain = "ingress6";

    /// <summary>Name of the netdev chain that buckets the IPv6 flows of an affinity mode.</summary>
    public static string AffinityChain6(AffinityMode mode) => $"affinity6_{AffinityRule.ModeName(mode)}";

    /// <summary>
    /// The netdev chain of IPv6 frames to the cluster MAC: the IPv4 ingress's rules in IPv6 words, with the same
    /// sets and counters (the early drop and the slice drop count both families), plus ND to the cluster MAC.
    /// </summary>
    private static void Ingress6(StringBuilder t, FilterSettings s)
    {
        t.Append(CultureInfo.InvariantCulture, $"\tchain {Ingress6Chain} {{\n");
        if (s.Affinity.Count > 0)
        {
            Rule(t, $"meta l4proto . th dport vmap {{ {AffinityMap(s, AffinityChain6)} }}",
                "ports with an affinity rule: bucket by their key (a later fragment has no th: it goes on)");
        }
        Rule(t, $"meta mark set {Jhash(s, AffinityMode.Single, AddressFamily.InterNetworkV6)} meta mark @{AcceptSet} meta mark set 0x0 meta pkttype set host accept",
            "common case: IPv6 in a bucket owned or draining goes on as PACKET_HOST");
        Rule(t, "meta mark set 0x0 meta pkttype set host", "other IPv6 frames to the cluster MAC: no bucket left in the mark; for this host");
        Rule(t, "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept", "ND to the cluster MAC (unicast NUD probes): l2bal answers");
        Rule(t, "exthdr frag exists accept", "fragments: judged after reassembly in ip6 prerouting");
        Rule(t, "meta l4proto ipv6-icmp accept", "ICMPv6: errors judged by conntrack (related), echo by bucket in ip6 prerouting");
        IngressSlicesAndEarlyDrop(t, s, "ip6");
        IngressAffinityChains(t, s, AddressFamily.InterNetworkV6);
    }

    /// <summary>The end of an ingress chain (IPv4's, <c>ingress6</c>): the own slice passes, other slices and the rest drop.</summary>
    private static void IngressSlicesAndEarlyDrop(StringBuilder t, FilterSettings s, string table)
    {
        Rule(t, $"meta l4proto {{ tcp, udp }} th dport @{SliceSet} accept", "own port slice: accepted by port whatever the bucket");
        if (s.Migrate)
        {
            Rule(t, $"{InboundKey(table)} @{MovedIn(table)} update @{MovedIn(table)} {{ {InboundKey(table)} timeout {Seconds(MovedInTimeout)}s }} meta mark set 0x0 counter name \"{Counters.PassedMovedIn}\" accept",
                "a flow restored here (its socket sent a marked frame): on to ip prerouting, judged by the socket mark");
            Rule(t, $"meta l4proto udp th dport {s.AllSlices} meta mark set 0x0 accept",
                "UDP to a slice: a restored relay may not have sent yet; judged by the socket mark in ip prerouting");
        }
        Rule(t, $"meta l4proto {{ tcp, udp }} th dport {s.AllSlices} counter name \"{Counters.DroppedOtherSlice}\" drop", $"another node's port slice in a bucket not owned here (in an owned one {table} prerouting drops it)");
        Rule(t, $"counter name \"{Counters.DroppedNotOwnedEarly}\" drop", "bucket neither owned nor draining: early drop, no conntrack cost");
        t.Append("\t}\n");
    }

    /// <summary>The netdev chains of the affinity modes for one family: they decide alone (docs/design.md#netdev-ingress).</summary>
    private static void IngressAffinityChains(StringBuilder t, FilterSettings s, AddressFamily family)
    {
        bool v6 = family == AddressFamily.InterNetworkV6;
        foreach (var mode in Modes(s))
        {
            t.Append(CultureInfo.InvariantCulture, $"\tchain {(v6 ? AffinityChain6(mode) : AffinityChain(mode))} {{\n");
            Rule(t, $"meta mark set {Jhash(s, mode, family)} meta mark @{AcceptSet} meta mark set 0x0 meta pkttype set host accept", "bucket owned or draining: goes on as PACKET_HOST");
            Rule(t, $"{(v6 ? "exthdr frag exists" : "ip frag-off & 0x3fff != 0")} meta mark set 0x0 meta pkttype set host accept",
                $"a first fragment: judged after reassembly in {(v6 ? "ip6" : "ip")} prerouting");
            Rule(t, $"counter name \"{Counters.DroppedNotOwnedEarly}\" drop", "bucket neither owned nor draining: early drop, no conntrack cost");
            t.Append("\t}\n");
        }
    }

    /// <summary>What a flow table says in its family's words: table family, ICMP protocol, the VIP, the loopback address.</summary>
    private readonly record struct Family(string Table, string Icmp, string IcmpHeader, IPAddress Vip, string Loopback, AddressFamily AddressFamily)
    {
        public static Family Ipv4(FilterSettings s) => new("ip", "icmp", "icmp", s.Vip!, "127.0.0.1", AddressFamily.InterNetwork);

        public static Family Ipv6(FilterSettings s) => new("ip6", "ipv6-icmp", "icmpv6", s.Vip6!, "::1", AddressFamily.InterNetworkV6);
    }

    /// <summary>Name of the ip chain that drops UDP of a port of affinity none whose bucket is not owned.</summary>
    public const string StatelessChain = "stateless_udp";

    /// <summary>UDP ports of affinity none: stateless by declaration, so never drained.</summary>
    public static IReadOnlyList<int> StatelessPorts(FilterSettings s) =>
        s.Affinity.Where(r => r.Mode == AffinityMode.None && r.Protocol == "udp").Select(r => r.Port).Order().ToList();

    /// <summary>Name of the chain (one per table) that buckets the flows of an affinity mode.</summary>
    public static string AffinityChain(AffinityMode mode) => $"affinity_{AffinityRule.ModeName(mode)}";

    private static IEnumerable<AffinityMode> Modes(FilterSettings s) => s.Affinity.Select(r => r.Mode).Distinct().Order();

    private static string AffinityMap(FilterSettings s, Func<AffinityMode, string>? chain = null) =>
        string.Join(", ", s.Affinity.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Protocol} . {r.Port} : jump {(chain ?? AffinityChain)(r.Mode)}")));

    private static void ReplaceSet(StringBuilder t, string set, BucketSet buckets)
    {
        t.Append(CultureInfo.InvariantCulture, $"flush set {set}\n");
        if (buckets.Count > 0)
        {
            // An empty "{ }" is a syntax error: an empty set is just the flush.
            t.Append(CultureInfo.InvariantCulture, $"add element {set} {{ {Elements(buckets)} }}\n");
        }
    }

    private static void MovedSetDeclaration(StringBuilder t, string name, string comment, string table) =>
        t.Append(CultureInfo.InvariantCulture, $"\tset {name} {{ type {FlowKeyType(table)}; flags dynamic, timeout; size {MovedSetSize}; comment \"{comment}\"; }}\n");

    private static long Seconds(TimeSpan span) => (long)Math.Ceiling(span.TotalSeconds);

    private static void SliceSetDeclaration(StringBuilder t) =>
        t.Append(CultureInfo.InvariantCulture, $"\tset {SliceSet} {{ type inet_service; flags interval; comment \"this node's port slice, empty while it yields to a conflict\"; }}\n");

    private static void Rule(StringBuilder t, string statement, string comment) =>
        t.Append(CultureInfo.InvariantCulture, $"\t\t{statement} comment \"{comment}\"\n");

    private static void Counter(StringBuilder t, string name, string comment) =>
        t.Append(CultureInfo.InvariantCulture, $"\tcounter {name} {{ comment \"{comment}\"; }}\n");

    private static void CheckCapacity(FilterSettings settings, BucketSet set, string name)
    {
        if (set.Capacity != settings.Buckets)
        {
            throw new ArgumentException($"The set ranges over {set.Capacity} buckets, the filter over {settings.Buckets}.", name);
        }
    }

    private static void Validate(FilterSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (s.Vip is null ? s.Vip6 is null : s.Vip.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException("The VIP must be IPv4, or absent beside an IPv6 VIP.", nameof(s));
        }

        if (s.Vip6 is { } vip6 && (vip6.AddressFamily != AddressFamily.InterNetworkV6 || vip6.IsIPv4MappedToIPv6 || vip6.ScopeId != 0))
        {
            throw new ArgumentException("The second VIP must be an unscoped IPv6 address.", nameof(s));
        }

        if (s.Buckets is < 1 or > MaxBuckets)
        {
            throw new ArgumentException($"Buckets must be 1..{MaxBuckets} (the conntrack mark holds 0x{FlowMarkBase:x} | bucket).", nameof(s));
        }

        if (!IsName(s.Interface, 15, allowDots: true) || !IsName(s.TableName, 64, allowDots: false))
        {
            throw new ArgumentException($"Interface '{s.Interface}' or table '{s.TableName}' is not a plain name.", nameof(s));
        }

        if (s.OwnSlice.Low < 1 || s.OwnSlice.High > 65535 || s.OwnSlice.Low > s.OwnSlice.High
            || s.AllSlices.Low > s.OwnSlice.Low || s.AllSlices.High < s.OwnSlice.High)
        {
            throw new ArgumentException($"Own slice {s.OwnSlice} must be a port range inside {s.AllSlices}.", nameof(s));
        }

        if (s.Wakes.Any(port => port is < 1 or > 65535))
        {
            throw new ArgumentException("Wake ports must be 1..65535.", nameof(s));
        }

        foreach (var rule in s.Affinity)
        {
            if (rule.Protocol is not ("tcp" or "udp") || rule.Port is < 1 or > 65535 || !s.Services.Contains((rule.Protocol, rule.Port)))
            {
                throw new ArgumentException($"Affinity rule {rule} is not for one of the services.", nameof(s));
            }
        }
    }

    private static bool IsName(string text, int maxLength, bool allowDots) =>
        !string.IsNullOrEmpty(text) && text.Length <= maxLength && char.IsAsciiLetter(text[0])
        && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' || (allowDots && c == '.'));
}
