using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Protocol;

public class ClusterMacTests
{
    [Fact]
    public void MulticastMac_AnyVip_IsInTheIanaBlockOutside224000()
    {
        var seen = new HashSet<MacAddress>();
        for (uint id = 0; id < 20_000; id++)
        {
            var mac = ClusterMac.Multicast(id);
            Assert.Equal(0x01005EUL, mac.Value >> 24);
            Assert.Equal(0UL, mac.Value & 0x80_0000UL); // bit 23 is always 0 in the IPv4 mapping
            Assert.True(mac.IsMulticast);
            Assert.False(mac.IsLocallyAdministered);
            Assert.True((mac.Value & 0x7F_FFFFUL) >= 0x100);
            Assert.Equal(mac, ClusterMac.Multicast(id));
            seen.Add(mac);
        }

        Assert.True(seen.Count > 19_900); // 2^23 values: collisions are possible, but rare
    }

    [Fact]
    public void UnicastFloodMac_AnyVip_IsLocalUnicastAndInjective()
    {
        Assert.Equal("02:c1:00:00:00:0a", ClusterMac.UnicastFlood(10).ToString());
        Assert.Equal("02:c1:ff:ff:ff:ff", ClusterMac.UnicastFlood(uint.MaxValue).ToString());
        var mac = ClusterMac.UnicastFlood(0x12345678);
        Assert.False(mac.IsMulticast);
        Assert.True(mac.IsLocallyAdministered);
        Assert.NotEqual(ClusterMac.UnicastFlood(1), ClusterMac.UnicastFlood(2));
    }
}
