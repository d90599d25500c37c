using System.Net;
using L2Balance.Balancer.Cluster;
using Xunit;

namespace L2Balance.L2Bal.Tests.Cluster;

public class BucketHashTests
{
    // Vectors recorded from the kernel in the lab (docs/design.md#buckets-and-the-hash).
    [Theory]
    [InlineData("198.18.0.101", 1024, 0x5eedu, 334)]
    [InlineData("198.18.0.102", 1024, 0x5eedu, 742)]
    [InlineData("198.18.0.103", 1024, 0x5eedu, 332)]
    [InlineData("198.18.0.101", 4096, 0xdeadbeefu, 2095)]
    [InlineData("198.18.0.102", 4096, 0xdeadbeefu, 3600)]
    [InlineData("198.18.0.103", 4096, 0xdeadbeefu, 3224)]
    public void Hash_KernelVectors_AreMatched(string address, int buckets, uint seed, int expected)
    {
        var ip = IPAddress.Parse(address);
        Assert.Equal(expected, BucketHash.Bucket(ip, buckets, seed));
        Assert.Equal(expected, BucketHash.Bucket(ip.GetAddressBytes(), buckets, seed));
    }

    // IPv6 vectors recorded from the kernel (jhash ip6 saddr): bucket for (1024, 0x5eed) and for (4096, 0xdeadbeef).
    [Theory]
    [InlineData(0x65, 252, 1637)]
    [InlineData(0x66, 272, 779)]
    [InlineData(0x67, 1, 3980)]
    public void Hash_KernelVectorsForIPv6_AreMatched(int last, int bucket1024, int bucket4096)
    {
        var ip = IPAddress.Parse($"fdc6:1200:10::{last:x}");
        Assert.Equal((bucket1024, bucket4096), (BucketHash.Bucket(ip, 1024, 0x5eed), BucketHash.Bucket(ip, 4096, 0xdeadbeef)));
        Assert.Equal(bucket1024, BucketHash.Bucket(ip.GetAddressBytes(), 1024, 0x5eed));
    }

    // IPv6 affinity vectors recorded from the kernel (ct mark of an output-hook rule, one datagram per flow).
    [Theory]
    [InlineData("fdc6:1200:10::65", 10000, "none", 4096, 0x5eedu, 187)]
    [InlineData("fdc6:1200:10::66", 10111, "none", 4096, 0x5eedu, 1720)]
    [InlineData("fdc6:1200:10::65", 0, "network", 1024, 0xdeadbeefu, 422)]
    [InlineData("fdc6:1200:10::67", 0, "network", 1024, 0xdeadbeefu, 422)]
    [InlineData("fdc6:1200:10:ff::7", 0, "network", 1024, 0xdeadbeefu, 422)]
    [InlineData("fdc6:1200:11::5", 0, "network", 1024, 0xdeadbeefu, 270)]
    public void Hash_KernelVectorsForIPv6Affinity_AreMatched(string source, int sourcePort, string mode, int buckets, uint seed, int expected)
    {
        var affinity = mode == "none" ? AffinityMode.None : AffinityMode.Network;
        Assert.Equal(expected, BucketHash.Bucket(IPAddress.Parse(source), sourcePort, affinity, buckets, seed));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(20)]
    public void Hash_OfAddressOrAddressAndPortKey_EqualsGenericLookup3Jhash(int length)
    {
        var rng = new Random(4242);
        var key = new byte[length];
        for (int i = 0; i < 10_000; i++)
        {
            rng.NextBytes(key);
            uint seed = (uint)rng.NextInt64(0, 1L << 32);
            Assert.Equal(KernelJhash(key, seed), BucketHash.Jhash(key, seed));
        }
    }

    // Recorded from the kernel's conntrack marks by AffinityLabTests (docs/design.md#buckets-and-the-hash).
    [Theory]
    [InlineData("198.18.0.101", 10000, "none", 4096, 0x5eedu, 1909)]
    [InlineData("198.18.0.110", 10037, "none", 4096, 0x5eedu, 2975)]
    [InlineData("198.18.0.128", 10111, "none", 4096, 0x5eedu, 32)]
    [InlineData("198.18.0.156", 10222, "none", 4096, 0x5eedu, 878)]
    [InlineData("198.18.0.101", 10000, "network", 1024, 0xdeadbeefu, 951)]
    [InlineData("198.18.0.138", 10037, "network", 1024, 0xdeadbeefu, 951)]
    [InlineData("198.18.18.7", 10111, "network", 1024, 0xdeadbeefu, 555)]
    [InlineData("198.18.30.7", 10148, "network", 1024, 0xdeadbeefu, 829)]
    [InlineData("198.18.0.119", 10037, "single", 4096, 0xdeadbeefu, 3953)]
    [InlineData("198.18.0.156", 10111, "single", 4096, 0xdeadbeefu, 1834)]
    public void Bucket_EachAffinityMode_MatchesKernelVectors(string address, int sourcePort, string mode, int buckets, uint seed, int expected)
    {
        var affinity = AffinityRule.Modes.Single(m => m.Name == mode).Mode;

        Assert.Equal(expected, BucketHash.Bucket(IPAddress.Parse(address), sourcePort, affinity, buckets, seed));
    }

    [Fact]
    public void Bucket_NoneKey_IsAddressThenPortThenTwoZeroBytes()
    {
        var key = new byte[] { 198, 18, 0, 101, 10000 >> 8, 10000 & 0xff, 0, 0 };

        Assert.Equal(BucketHash.Scale(KernelJhash(key, 0x5eed), 4096), BucketHash.Bucket(IPAddress.Parse("198.18.0.101"), 10000, AffinityMode.None, 4096, 0x5eed));
        Assert.Equal(
            BucketHash.Bucket(IPAddress.Parse("198.18.7.0"), 0, AffinityMode.Single, 1024, 9),
            BucketHash.Bucket(IPAddress.Parse("198.18.7.200"), 5, AffinityMode.Network, 1024, 9));
    }

    [Fact]
    public void Scale_AnyHash_IsReciprocalScaleNotModulo()
    {
        Assert.Equal(0, BucketHash.Scale(0, 4096));
        Assert.Equal(4095, BucketHash.Scale(uint.MaxValue, 4096));
        Assert.Equal(2048, BucketHash.Scale(0x8000_0000u, 4096));
        Assert.Equal(0, BucketHash.Scale(4097, 4096)); // a modulo would give 1
    }

    [Fact]
    public void Bucket_BadInput_IsRejected()
    {
        Assert.Throws<ArgumentException>(() => BucketHash.Jhash([], 0));
        Assert.Throws<ArgumentException>(() => BucketHash.Bucket(new byte[5], 1024, 0));
        Assert.Throws<ArgumentException>(() => BucketHash.Bucket(IPAddress.Parse("::ffff:198.18.0.1"), 1024, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => BucketHash.Bucket(IPAddress.Loopback, 65536, AffinityMode.None, 1024, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => BucketHash.Bucket(IPAddress.Loopback, 0, 0));
    }

    [Fact]
    public void Bucket_OfASubnet_SpreadsEvenly()
    {
        var counts = new int[16];
        for (int i = 0; i < 65536; i++)
        {
            counts[BucketHash.Bucket([10, 0, (byte)(i >> 8), (byte)i], 16, 0x5eed)]++;
        }

        Assert.All(counts, c => Assert.InRange(c, 4096 * 0.9, 4096 * 1.1));
    }

    // Straight transcription of include/linux/jhash.h jhash() (any length), as an independent reference.
    private static uint KernelJhash(byte[] k, uint initval)
    {
        static uint Rol(uint x, int s) => (x << s) | (x >> (32 - s));
        uint length = (uint)k.Length, a, b, c;
        a = b = c = 0xdeadbeef + length + initval;
        int o = 0;
        while (length > 12)
        {
            a += BitConverter.ToUInt32(k, o); b += BitConverter.ToUInt32(k, o + 4); c += BitConverter.ToUInt32(k, o + 8);
            a -= c; a ^= Rol(c, 4); c += b; b -= a; b ^= Rol(a, 6); a += c;
            c -= b; c ^= Rol(b, 8); b += a; a -= c; a ^= Rol(c, 16); c += b;
            b -= a; b ^= Rol(a, 19); a += c; c -= b; c ^= Rol(b, 4); b += a;
            length -= 12; o += 12;
        }

        switch (length)
        {
            case 12: c += (uint)k[o + 11] << 24; goto case 11;
            case 11: c += (uint)k[o + 10] << 16; goto case 10;
            case 10: c += (uint)k[o + 9] << 8; goto case 9;
            case 9: c += k[o + 8]; goto case 8;
            case 8: b += (uint)k[o + 7] << 24; goto case 7;
            case 7: b += (uint)k[o + 6] << 16; goto case 6;
            case 6: b += (uint)k[o + 5] << 8; goto case 5;
            case 5: b += k[o + 4]; goto case 4;
            case 4: a += (uint)k[o + 3] << 24; goto case 3;
            case 3: a += (uint)k[o + 2] << 16; goto case 2;
            case 2: a += (uint)k[o + 1] << 8; goto case 1;
            case 1:
                a += k[o];
                c ^= b; c -= Rol(b, 14); a ^= c; a -= Rol(c, 11); b ^= a; b -= Rol(a, 25);
                c ^= b; c -= Rol(b, 16); a ^= c; a -= Rol(c, 4); b ^= a; b -= Rol(a, 14);
                c ^= b; c -= Rol(b, 24);
                break;
            default:
                break;
        }

        return c;
    }
}
