using System.Net;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Kernel;
using Xunit;

namespace L2Balance.L2Bal.Tests.Config;

public class BalancerCommandLineTests
{
    private static readonly string[] Required =
        ["run", "--interface", "eth0", "--vip", "198.18.0.10/24", "--node-id", "2", "--node-count", "3", "--key-file", "/etc/l2bal/key"];

    private static BalancerOptions Run(params string[] extra)
    {
        var result = BalancerCommandLine.Parse([.. Required, .. extra]);
        var run = Assert.IsType<BalancerCommand.Run>(result);
        return run.Options;
    }

    private static IReadOnlyList<string> Errors(params string[] args) =>
        Assert.IsType<BalancerCommand.Invalid>(BalancerCommandLine.Parse(args)).Messages;

    [Fact]
    public void Required_flags_give_the_documented_defaults()
    {
        var o = Run();
        Assert.Equal("eth0", o.Interface);
        Assert.Equal(IPAddress.Parse("198.18.0.10"), o.Vip);
        Assert.Equal(24, o.VipPrefix);
        Assert.Equal((2, 3), (o.NodeId, o.NodeCount));
        Assert.Equal(4096, o.Buckets);
        Assert.Equal(TimeSpan.FromMilliseconds(40), o.AdvertInterval);
        Assert.Equal(3, o.DeadAfterMisses);
        Assert.Equal(TimeSpan.FromMilliseconds(120), o.DeadTime);
        Assert.Equal(TimeSpan.FromMilliseconds(80), o.LeaseTime);
        Assert.True(o.LeaseTime < o.DeadTime && o.LeaseTime > o.AdvertInterval);
        Assert.Equal(MacMode.Multicast, o.MacMode);
        Assert.Equal(HealthProbeKind.None, o.Health.Kind);
        Assert.Equal(TimeSpan.FromMilliseconds(100), o.HealthInterval);
        Assert.Equal((3, 5), (o.HealthFall, o.HealthRise));
        Assert.Equal(0xC612000Au, o.EffectiveClusterId);
        Assert.Equal(o.EffectiveClusterId, o.EffectiveSeed);
    }

    [Fact]
    public void Every_option_is_read()
    {
        var o = Run("--buckets", "1024", "--seed", "0x5eed", "--cluster-id", "7", "--advert-interval", "20ms", "--dead-after", "4",
            "--mac-mode", "unicast-flood", "--service", "tcp/1080", "--service", "udp/1080", "--health", "socks5://198.18.0.10:1080",
            "--health-interval", "30ms", "--health-fall", "2", "--health-rise", "4", "--health-timeout", "250ms", "--control", "/run/l2bal.sock", "--metrics", "127.0.0.1:9100");
        Assert.Equal(1024, o.Buckets);
        Assert.Equal(0x5eedu, o.EffectiveSeed);
        Assert.Equal(7u, o.EffectiveClusterId);
        Assert.Equal(TimeSpan.FromMilliseconds(20), o.AdvertInterval);
        Assert.Equal(4, o.DeadAfterMisses);
        Assert.Equal(MacMode.UnicastFlood, o.MacMode);
        Assert.Equal([new ServiceSpec("tcp", 1080), new ServiceSpec("udp", 1080)], o.Services);
        Assert.Equal(HealthProbeKind.Socks5, o.Health.Kind);
        Assert.Equal(IPEndPoint.Parse("198.18.0.10:1080"), o.Health.EndPoint);
        Assert.Equal(TimeSpan.FromMilliseconds(30), o.HealthInterval);
        Assert.Equal((2, 4), (o.HealthFall, o.HealthRise));
        Assert.Equal(TimeSpan.FromMilliseconds(250), o.HealthTimeout);
        Assert.Equal("/run/l2bal.sock", o.ControlPath);
        Assert.Equal(IPEndPoint.Parse("127.0.0.1:9100"), o.Metrics);
    }

    [Theory]
    [InlineData("--vip", "2001:db8::1", "--vip '2001:db8::1': not an IPv4 address (l2bal balances one IPv4 VIP)")]
    [InlineData("--vip", "198.18.0.10/33", "--vip '198.18.0.10/33': prefix must be 1..32")]
    [InlineData("--node-id", "4", "--node-id 4 is larger than --node-count 3")]
    [InlineData("--node-count", "65", "--node-count '65': must be a whole number from 1 to 64")]
    [InlineData("--advert-interval", "50", "--advert-interval '50': give a duration with a unit, e.g. 50ms or 0.05s")]
    [InlineData("--advert-interval", "1ms", "--advert-interval 1ms: must be between 5ms and 10s")]
    [InlineData("--health-interval", "2ms", "--health-interval 2ms: must be between 5ms and 60s")]
    [InlineData("--health-interval", "100", "--health-interval '100': give a duration with a unit, e.g. 50ms or 0.05s")]
    [InlineData("--mac-mode", "broadcast", "--mac-mode 'broadcast': use multicast or unicast-flood")]
    [InlineData("--service", "tcp/40000", "--service 'tcp/40000': port 40000 lies inside the nodes' port slices (32768-60999); choose a service port outside them")]
    [InlineData("--service", "sctp/80", "--service 'sctp/80': use tcp/PORT or udp/PORT")]
    [InlineData("--health", "http://x", "--health 'http://x': use socks5://ADDR:PORT, tcp://ADDR:PORT or exec:COMMAND")]
    [InlineData("--seed", "-1", "--seed '-1': must be a 32-bit unsigned number (decimal or 0x hex)")]
    [InlineData("--buckets", "2", "--buckets 2 is smaller than --node-count 3")]
    public void Bad_values_are_refused_by_name(string flag, string value, string message)
    {
        var args = Required.ToList();
        var at = args.IndexOf(flag);
        if (at >= 0)
        {
            args[at + 1] = value;
        }
        else
        {
            args.AddRange([flag, value]);
        }
        Assert.Contains(message, Errors([.. args]));
    }

    [Fact]
    public void Missing_required_flags_are_all_reported()
    {
        var errors = Errors("run");
        Assert.Contains("--interface is required (the segment interface, e.g. eth0)", errors);
        Assert.Contains("--vip is required (the shared IPv4 address, e.g. 198.18.0.10/24)", errors);
        Assert.Contains("--node-id is required", errors);
        Assert.Contains("--node-count is required", errors);
        Assert.Contains("--key-file is required (the shared key; make one with 'l2bal genkey > FILE')", errors);
    }

    [Fact]
    public void Unknown_flags_and_missing_values_are_refused()
    {
        Assert.Contains("run: unknown flag '--weight'", Errors([.. Required, "--weight", "3"]));
        Assert.Contains("--buckets needs a value", Errors([.. Required, "--buckets"]));
        Assert.Contains("--buckets given 2 times", Errors([.. Required, "--buckets", "64", "--buckets", "128"]));
    }

    [Fact]
    public void Config_file_gives_the_same_options_as_flags()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "# node 2\ninterface eth0\nvip: 198.18.0.10/24\nnode-id 2\nnode-count 3\nkey-file /etc/l2bal/key\n");
            var fromFile = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(["run", "--config", path])).Options;
            var fromFlags = Run();
            Assert.Empty(fromFile.Services);
            Assert.Equal(fromFlags with { Source = path }, fromFile with { Services = fromFlags.Services });
            File.WriteAllText(path, "interface eth0\nweight 3\n");
            Assert.Contains($"{path}:2:1: unknown setting 'weight'", Errors("run", "--config", path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Client_commands()
    {
        Assert.Equal(new BalancerCommand.Control("status --json", null), BalancerCommandLine.Parse(["status", "--json"]));
        Assert.Equal(new BalancerCommand.Control("owner 198.18.64.10", "/run/x"), BalancerCommandLine.Parse(["owner", "198.18.64.10", "--control", "/run/x"]));
        Assert.Equal(new BalancerCommand.Control("drain", null), BalancerCommandLine.Parse(["drain"]));
        Assert.Equal(new BalancerCommand.Slice(2, 3), BalancerCommandLine.Parse(["slice", "--node-id", "2", "--node-count", "3"]));
        Assert.Contains("owner: '::1' is not an IPv4 address", Errors("owner", "::1"));
        Assert.Contains("unknown command 'frobnicate'", Errors("frobnicate"));
    }
}
