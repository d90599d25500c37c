namespace L2Balance.Balancer.Protocol;

/// <summary>Derivation of the cluster MAC, the address every node receives VIP traffic on.</summary>
internal static class ClusterMac
{
    /// <summary>IANA's IPv4-multicast OUI prefix 01:00:5e (RFC 1112 section 6.4; bit 23 of the rest is 0).</summary>
    public const ulong IanaMulticastPrefix = 0x01005E_000000UL;

    /// <summary>Prefix of the unicast-flood MAC: 02 = locally administered unicast, c1 = "cluster".</summary>
    public const ulong UnicastFloodPrefix = 0x02C1_0000_0000UL;

    /// <summary>
    /// Multicast mode: 01:00:5e followed by the low 23 bits of splitmix64(cluster id).
    /// </summary>
    /// <remarks>
    /// Hashed rather than the raw id so that small ids (1, 2, 10) do not land on
    /// 01:00:5e:00:00:xx, which maps 224.0.0.0/24 (all-hosts, all-routers, OSPF, VRRP...) and
    /// is flooded or trapped specially by many switches. If the hash still lands in that /24
    /// (low 23 bits &lt; 0x100), bit 22 is set, which moves it out deterministically. Only 2^23
    /// values exist: two clusters on one segment may collide; an operator then gives one of them
    /// another <c>--cluster-id</c> (there is no option to set the MAC itself).
    /// </remarks>
    public static MacAddress Multicast(uint clusterId)
    {
        ulong low23 = Cluster.SplitMix64.Mix(clusterId) & 0x7F_FFFFUL;
        if (low23 < 0x100)
        {
            low23 |= 0x40_0000UL;
        }

        return new MacAddress(IanaMulticastPrefix | low23);
    }

    /// <summary>
    /// Unicast-flood mode: 02:c1 followed by the cluster id as 4 bytes big-endian
    /// (cluster 10 → 02:c1:00:00:00:0a, the address used in the lab).
    /// </summary>
    /// <remarks>
    /// Injective, so distinct clusters never share a MAC. A locally administered unicast
    /// address that no NIC owns is never learned by a switch as long as no frame leaves with it
    /// as source (guarded in netdev egress), so the switch floods it to every port.
    /// </remarks>
    public static MacAddress UnicastFlood(uint clusterId) => new(UnicastFloodPrefix | clusterId);
}
