using System.Net;
using System.Reflection;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Kernel;
using L2Balance.Common.CommandLine;
using Xunit;

namespace L2Balance.L2Bal.Tests.Config;

public class BalancerCommandLineTests
{
    private static readonly string[] Required =
        ["run", "--interface", "eth0", "--vip", "198.18.0.10/24", "--node-id", "2", "--node-count", "3", "--key-file", "/etc/l2bal/key"];

    private static BalancerOptions Run(params string[] extra) =>
        Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse([.. Required, .. extra])).Options;

    private static BalancerCommand.Invalid Invalid(params string[] args) =>
        Assert.IsType<BalancerCommand.Invalid>(BalancerCommandLine.Parse(args));

    private static string Output(params string[] args) =>
        Assert.IsType<BalancerCommand.Output>(BalancerCommandLine.Parse(args)).Text;

    /// <summary>The required flags with one of them replaced, or with a flag added.</summary>
    private static string[] RequiredWith(string flag, string value)
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
        return [.. args];
    }

    [Fact]
    public void Run_RequiredFlagsOnly_HasTheDocumentedDefaults()
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
        Assert.Empty(o.Services);
        Assert.Empty(o.Health);
        Assert.Equal(TimeSpan.FromMilliseconds(100), o.HealthInterval);
        Assert.Equal((3, 5), (o.HealthFall, o.HealthRise));
        Assert.Equal(TimeSpan.FromMilliseconds(500), o.HealthTimeout);
        Assert.Null(o.ControlPath);
        Assert.Null(o.Metrics);
        Assert.Equal(0xC612000Au, o.EffectiveClusterId);
        Assert.Equal(o.EffectiveClusterId, o.EffectiveSeed);
        Assert.Equal("flags", o.Source);
    }

    [Fact]
    public void Run_AnIPv6VipBesideTheIPv4One_KeepsTheIPv4Derivation()
    {
        var o = Run("--vip", "fdc6:1200:10::a/64");
        Assert.Equal(IPAddress.Parse("198.18.0.10"), o.Vip);
        Assert.Equal(IPAddress.Parse("fdc6:1200:10::a"), o.Vip6);
        Assert.Equal(64, o.Vip6Prefix);
        Assert.Equal(0xC612000Au, o.EffectiveClusterId);
        Assert.Equal(0xC612000Au, o.EffectiveSeed);
        Assert.Null(o.Unserved);
        Assert.Null(Run().Unserved);
    }

    [Fact]
    public void Run_AnIPv6VipAlone_DerivesTheIdFromItsWords()
    {
        var o = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(RequiredWith("--vip", "fdc6:1200:10::a"))).Options;
        Assert.Null(o.Vip);
        Assert.Equal(128, o.Vip6Prefix);
        Assert.Equal(0xfdc61200u ^ 0x00100000u ^ 0u ^ 0xau, o.EffectiveClusterId);
        Assert.NotEqual(o.EffectiveClusterId, BalancerOptions.DerivedClusterId(null, IPAddress.Parse("fdc6:1200:10::b")));
        Assert.Null(o.Unserved);
    }

    [Fact]
    public void Run_AnIPv6VipAloneWithMigrate_IsServed()
    {
        var args = RequiredWith("--vip", "fdc6:1200:10::a").ToList();
        args.AddRange(["--migrate", "fdc6:1200::2"]);
        var o = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse([.. args])).Options;

        // The ip6 table has the moved-flow sets (docs/design.md#migration-filter).
        Assert.NotNull(o.Migration);
        Assert.Null(o.Unserved);
    }

    [Theory]
    [InlineData("dns://[fdc6:1200:10::a]:53/probe.lab", true)]
    [InlineData("dns://127.0.0.1:53/probe.lab", true)]
    [InlineData("socks5://[fdc6:1200:10::a]:1080", false)]
    [InlineData("tcp://[::1]:1080", false)]
    public void Run_AnIPv6VipAloneWithAProbeOfItsOwnService_IsUnservedOnlyForDns(string probe, bool unserved)
    {
        var args = RequiredWith("--vip", "fdc6:1200:10::a").ToList();
        args.AddRange(["--health", probe]);
        var o = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse([.. args])).Options;

        if (unserved)
        {
            Assert.StartsWith($"--health {probe}: the port-unreachable wake of a dns:// probe", o.Unserved, StringComparison.Ordinal);
        }
        else
        {
            Assert.Null(o.Unserved);
        }
        // Beside an IPv4 VIP the same probe is served (its wake reads the IPv4 VIP's errors).
        args.AddRange(["--vip", "198.18.0.10/24"]);
        Assert.Null(Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse([.. args])).Options.Unserved);
    }

    [Theory]
    [InlineData("fe80::1", "link-local")]
    [InlineData("ff02::1", "multicast")]
    [InlineData("::ffff:198.18.0.11", "mapped")]
    [InlineData("::1", "loopback")]
    [InlineData("198.18.0.11", "a second IPv4 VIP")]
    [InlineData("fdc6:1200:10::a/129", "the prefix must be 1 to 128")]
    public void Run_ABadSecondVip_IsRefused(string vip, string expected)
    {
        var args = vip.StartsWith("fdc6", StringComparison.Ordinal) ? RequiredWith("--vip", vip) : [.. Required, "--vip", vip];
        var invalid = Invalid(args);
        Assert.Contains(invalid.Messages, m => m.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Run_TwoIPv6Vips_AreRefused()
    {
        var invalid = Invalid([.. RequiredWith("--vip", "fdc6:1200:10::a"), "--vip", "fdc6:1200:10::b"]);
        Assert.Contains(invalid.Messages, m => m.Contains("a second IPv6 VIP", StringComparison.Ordinal));
    }

    [Fact]
    public void Run_EveryFlag_IsRead()
    {
        var o = Run("--buckets", "1024", "--seed", "0x5eed", "--cluster-id", "7", "--advert-interval", "20ms", "--dead-after", "4",
            "--mac-mode", "unicast-flood", "--service", "tcp/1080", "--service=udp/1080", "--health", "socks5://198.18.0.10:1080",
            "--health-interval", "0.03s", "--health-fall", "2", "--health-rise", "4", "--health-timeout", "250ms", "--control", "/run/l2bal.sock",
            "--metrics", "127.0.0.1:9100");
        Assert.Equal(1024, o.Buckets);
        Assert.Equal(0x5eedu, o.EffectiveSeed);
        Assert.Equal(7u, o.EffectiveClusterId);
        Assert.Equal(TimeSpan.FromMilliseconds(20), o.AdvertInterval);
        Assert.Equal(4, o.DeadAfterMisses);
        Assert.Equal(MacMode.UnicastFlood, o.MacMode);
        Assert.Equal([new ServiceSpec("tcp", 1080), new ServiceSpec("udp", 1080)], o.Services);
        var probe = Assert.Single(o.Health);
        Assert.Equal(HealthProbeKind.Socks5, probe.Kind);
        Assert.Equal(IPEndPoint.Parse("198.18.0.10:1080"), probe.EndPoint);
        Assert.Equal(TimeSpan.FromMilliseconds(30), o.HealthInterval);
        Assert.Equal((2, 4), (o.HealthFall, o.HealthRise));
        Assert.Equal(TimeSpan.FromMilliseconds(250), o.HealthTimeout);
        Assert.Equal("/run/l2bal.sock", o.ControlPath);
        Assert.Equal(IPEndPoint.Parse("127.0.0.1:9100"), o.Metrics);
    }

    [Theory]
    [InlineData("tcp://127.0.0.1:1080", "Tcp")]
    [InlineData("exec:/bin/true", "Exec")]
    [InlineData("dns://198.18.0.10:53/probe.lab.example.", "Dns")]
    public void Run_HealthProbe_IsReadByKind(string value, string kind) =>
        Assert.Equal(kind, Assert.Single(Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(RequiredWith("--health", value))).Options.Health).Kind.ToString());

    [Fact]
    public void Run_HealthNone_HasNoProbe() =>
        Assert.Empty(Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(RequiredWith("--health", "none"))).Options.Health);

    [Fact]
    public void Run_SeveralHealthFlags_AreEveryProbeInOrder()
    {
        var o = Run("--health", "socks5://198.18.0.10:1080", "--health", "dns://198.18.0.10:53/probe.lab");
        Assert.Equal(["socks5://198.18.0.10:1080", "dns://198.18.0.10:53/probe.lab"], o.Health.Select(p => p.ToString()));
        Assert.Equal([5, .. "probe"u8, 3, .. "lab"u8, 0], o.Health[1].DnsWireName);
    }

    [Theory]
    [InlineData("--interface", "a/b", "--interface 'a/b': not an interface name")]
    [InlineData("--vip", "198.18.0.300", "--vip '198.18.0.300': not an IPv4 or IPv6 address")]
    [InlineData("--vip", "198.18.0.10/33", "--vip '198.18.0.10/33': the prefix must be 1 to 32")]
    [InlineData("--node-id", "4", "--node-id 4 is larger than --node-count 3")]
    [InlineData("--node-id", "0", "--node-id '0': give a whole number from 1 to 64")]
    [InlineData("--node-count", "65", "--node-count '65': give a whole number from 1 to 64")]
    [InlineData("--advert-interval", "50", "--advert-interval '50': a number alone has no unit: write 50ms or 50s")]
    [InlineData("--advert-interval", "1ms", "--advert-interval '1ms': give a duration from 5ms to 10s")]
    [InlineData("--advert-interval", "40 ms", "--advert-interval '40 ms': unknown unit ' ms': use ms, s, m or h, e.g. 40ms or 5s")]
    [InlineData("--advert-interval", "-40ms", "--advert-interval '-40ms': a duration cannot be negative")]
    [InlineData("--health-interval", "2ms", "--health-interval '2ms': give a duration from 5ms to 1m")]
    [InlineData("--health-interval", "100", "--health-interval '100': a number alone has no unit: write 100ms or 100s")]
    [InlineData("--health-timeout", "fast", "--health-timeout 'fast': not a duration: write a number and its unit (ms, s, m or h), e.g. 40ms or 5s")]
    [InlineData("--dead-after", "1", "--dead-after '1': give a whole number from 2 to 100")]
    [InlineData("--health-fall", "x", "--health-fall 'x': give a whole number from 1 to 100")]
    [InlineData("--mac-mode", "broadcast", "--mac-mode 'broadcast': use multicast or unicast-flood")]
    [InlineData("--service", "tcp/40000",
        "--service 'tcp/40000': port 40000 lies inside the nodes' port slices (32768-60999); choose a service port outside them")]
    [InlineData("--service", "sctp/80", "--service 'sctp/80': use tcp/PORT or udp/PORT")]
    [InlineData("--health", "http://x", "--health 'http://x': use socks5://ADDR:PORT, tcp://ADDR:PORT, dns://ADDR:PORT/NAME, exec:COMMAND or none")]
    [InlineData("--health", "dns://198.18.0.10:53", "--health 'dns://198.18.0.10:53': use dns://ADDR:PORT/NAME with a numeric address and a port")]
    [InlineData("--health", "dns://198.18.0.10:53/a..b", "--health 'dns://198.18.0.10:53/a..b': not a DNS name: label '' must have 1 to 63 characters")]
    [InlineData("--health", "dns://198.18.0.10:53/a b", "--health 'dns://198.18.0.10:53/a b': not a DNS name: label 'a b' may hold only letters, digits, '-' and '_'")]
    [InlineData("--health", "tcp://localhost:80", "--health 'tcp://localhost:80': use tcp://ADDR:PORT with a numeric address")]
    [InlineData("--seed", "-1", "--seed '-1': give a 32-bit unsigned number, decimal or 0x hex")]
    [InlineData("--buckets", "2", "--buckets 2 is smaller than --node-count 3")]
    [InlineData("--metrics", "127.0.0.1", "--metrics '127.0.0.1': use ADDR:PORT with a numeric address and a port")]
    public void Run_BadValue_IsRefusedNamingFlagAndValue(string flag, string value, string message)
    {
        var invalid = Invalid(RequiredWith(flag, value));
        Assert.Equal([message], invalid.Messages);
        Assert.Equal(ExitCodes.Usage, invalid.ExitCode);
        Assert.Equal("l2bal run --help", invalid.SeeHelp);
    }

    [Fact]
    public void Run_NoSettings_ReportsEveryMissingRequiredFlag()
    {
        Assert.Equal(
            [
                "--interface is required (the segment interface, e.g. eth0)",
                "--vip is required (the shared IPv4 address, e.g. 198.18.0.10/24, or an IPv6 one, or both)",
                "--node-id is required",
                "--node-count is required",
                "--key-file is required (the shared key; make one with 'l2bal genkey --output FILE')",
            ],
            Invalid("run").Messages);
    }

    [Theory]
    [InlineData(new[] { "--priority", "3" }, "Unrecognized command or argument '--priority'.")]
    [InlineData(new[] { "--buckets" }, "Required argument missing for option: '--buckets'.")]
    [InlineData(new[] { "--buckets", "64", "--buckets", "128" }, "Option '--buckets' expects a single argument but 2 were provided.")]
    [InlineData(new[] { "--service", "tcp/80", "--service" }, "Required argument missing for option: '--service'.")]
    [InlineData(new[] { "stray" }, "Unrecognized command or argument 'stray'.")]
    [InlineData(new[] { "--version" }, "Unrecognized command or argument '--version'.")]
    public void Run_MalformedCommandLine_IsAUsageError(string[] extra, string message)
    {
        var invalid = Invalid([.. Required, .. extra]);
        Assert.Contains(message, invalid.Messages);
        Assert.Equal(ExitCodes.Usage, invalid.ExitCode);
        Assert.Equal("l2bal run --help", invalid.SeeHelp);
    }

    [Theory]
    [InlineData("run")]
    [InlineData("check-config")]
    [InlineData("status")]
    [InlineData("owner")]
    [InlineData("drain")]
    [InlineData("undrain")]
    [InlineData("slice")]
    [InlineData("genkey")]
    public void Help_OfEverySubcommand_ShowsItsUsage(string command)
    {
        Assert.Contains($"Usage:\n  l2bal {command}", Output(command, "--help").ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.Equal(Output(command, "--help"), Output(command, "-h"));
    }

    [Fact]
    public void Help_OfRun_ShowsEachDefaultFromTheOptions()
    {
        var help = Output("run", "--help");
        Assert.Contains($"[default: {DurationSyntax.Format(BalancerOptions.DefaultAdvertInterval)}]", help, StringComparison.Ordinal);
        Assert.Contains("--advert-interval <DURATION>  Time between adverts, 5ms to 10s [default: 40ms]", help, StringComparison.Ordinal);
        Assert.Contains("[default: 4096]", help, StringComparison.Ordinal);
        Assert.Contains("[default: 100ms]", help, StringComparison.Ordinal);
        Assert.Contains("[default: 500ms]", help, StringComparison.Ordinal);
        Assert.Contains("[default: multicast]", help, StringComparison.Ordinal);
        Assert.All(BalancerSettings.All, s => Assert.Contains(s.Flag + " <" + s.HelpName + ">", help, StringComparison.Ordinal));
    }

    [Fact]
    public void Help_WithoutArguments_ListsEveryCommand()
    {
        var help = Output();
        Assert.Equal(Output("--help"), help);
        Assert.All(["run", "check-config", "status", "owner", "drain", "undrain", "slice", "genkey"], c => Assert.Contains($"\n  {c} ", help, StringComparison.Ordinal));
    }

    [Fact]
    public void Version_OfTheProgram_IsTheRepositorysVersion()
    {
        var version = typeof(BalancerCommandLine).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
        Assert.Equal($"l2bal {version}\n", Output("--version").ReplaceLineEndings("\n"));
        Assert.StartsWith("0.1.0", version, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_UnknownCommand_IsAUsageError()
    {
        var invalid = Invalid("frobnicate");
        Assert.Contains("Unrecognized command or argument 'frobnicate'.", invalid.Messages);
        Assert.Equal("l2bal --help", invalid.SeeHelp);
    }

    [Fact]
    public void ControlCommands_WithTheirFlags_BecomeRequests()
    {
        Assert.Equal(new BalancerCommand.Control("status", null), BalancerCommandLine.Parse(["status"]));
        Assert.Equal(new BalancerCommand.Control("status --json", null), BalancerCommandLine.Parse(["status", "--json"]));
        Assert.Equal(new BalancerCommand.Control("owner 198.18.64.10", "/run/x"), BalancerCommandLine.Parse(["owner", "198.18.64.10", "--control", "/run/x"]));
        Assert.Equal(new BalancerCommand.Control("owner fdc6:1200:10::65", null), BalancerCommandLine.Parse(["owner", "fdc6:1200:10::65"]));
        Assert.Equal(new BalancerCommand.Control("owner 198.18.64.10 udp/53 40000", null),
            BalancerCommandLine.Parse(["owner", "198.18.64.10", "--port", "udp/53", "--source-port", "40000"]));
        Assert.Equal(new BalancerCommand.Control("owner 198.18.64.10 tcp/80", null), BalancerCommandLine.Parse(["owner", "198.18.64.10", "--port", "tcp/80"]));
        Assert.Equal(new BalancerCommand.Control("drain", null), BalancerCommandLine.Parse(["drain"]));
        Assert.Equal(new BalancerCommand.Control("undrain", "/run/y"), BalancerCommandLine.Parse(["undrain", "--control=/run/y"]));
        Assert.IsType<BalancerCommand.GenKey>(BalancerCommandLine.Parse(["genkey"]));
    }

    [Theory]
    [InlineData(new[] { "owner", "::ffff:198.18.0.7" }, "owner: '::ffff:198.18.0.7' is not an IPv4 or IPv6 address (without a scope; not IPv4-mapped)")]
    [InlineData(new[] { "owner" }, "Required argument 'ADDR' missing for command: 'owner'.")]
    [InlineData(new[] { "status", "--json", "--control" }, "Required argument missing for option: '--control'.")]
    [InlineData(new[] { "drain", "now" }, "Unrecognized command or argument 'now'.")]
    [InlineData(new[] { "genkey", "32" }, "Unrecognized command or argument '32'.")]
    public void ControlCommands_Malformed_AreUsageErrors(string[] args, string message) =>
        Assert.Contains(message, Invalid(args).Messages);

    [Fact]
    public void Slice_NodeIdAndCount_AreRead() =>
        Assert.Equal(new BalancerCommand.Slice(2, 3), BalancerCommandLine.Parse(["slice", "--node-id", "2", "--node-count", "3"]));

    [Fact]
    public void Slice_NodeCountAlone_AsksForEveryNodesSlice() =>
        Assert.Equal(new BalancerCommand.Slice(null, 3), BalancerCommandLine.Parse(["slice", "--node-count", "3"]));

    [Theory]
    [InlineData(new[] { "slice", "--node-id", "4", "--node-count", "3" }, "--node-id 4 is larger than --node-count 3")]
    [InlineData(new[] { "slice", "--node-id", "1", "--node-count", "65" }, "--node-count '65': give a whole number from 1 to 64")]
    [InlineData(new[] { "slice", "--node-id", "1" }, "Option '--node-count' is required.")]
    [InlineData(new[] { "slice", "--node-id", "0", "--node-count", "3" }, "--node-id '0': give a whole number from 1 to 64")]
    public void Slice_BadOrMissingFlag_IsRefused(string[] args, string message)
    {
        var invalid = Invalid(args);
        Assert.Equal([message], invalid.Messages);
        Assert.Equal("l2bal slice --help", invalid.SeeHelp);
    }

    [Theory]
    [InlineData(new[] { "owner", "198.18.64.10", "--port", "udp53" }, "owner: --port 'udp53': use tcp/PORT or udp/PORT")]
    [InlineData(new[] { "owner", "198.18.64.10", "--port", "udp/53", "--source-port", "x" }, "owner: --source-port 'x': give a port, 0 to 65535")]
    [InlineData(new[] { "owner", "198.18.64.10", "--source-port", "40000" }, "owner: --source-port needs --port (the service whose affinity uses it)")]
    public void Owner_BadPortOrSourcePort_IsRefused(string[] args, string message)
    {
        var invalid = Invalid(args);

        Assert.Equal([message], invalid.Messages);
        Assert.Equal(ExitCodes.Usage, invalid.ExitCode);
    }
}
