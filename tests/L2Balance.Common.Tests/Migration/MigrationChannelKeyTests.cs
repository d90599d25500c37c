using L2Balance.Common.Migration;
using Xunit;

namespace L2Balance.Common.Tests.Migration;

public class MigrationChannelKeyTests
{
    [Fact]
    public void Derive_ClusterKeys_MatchRfc5869VectorsComputedOutsideDotNet()
    {
        var clusterKey = new byte[32];

        // The vectors of tests/L2Balance.Proxy.Tests/Migration/MigrationRecordsTests.cs (hmac/hashlib): both products derive alike.
        Assert.Equal("AB6B16DC1E4BD41FEC12CDE0A012AFB56A528FDDE8E0043DEABB93A518E98687", Convert.ToHexString(MigrationChannelKey.Derive(clusterKey)));
        clusterKey[0] = 1;
        Assert.Equal("DBC5C17E03F5B1D2ED27F8CF125EF8870AB640A9563EBE307D26F19320BF5250", Convert.ToHexString(MigrationChannelKey.Derive(clusterKey)));
    }
}
