using L2Balance.Balancer.Config;

namespace L2Balance.Fuzz.Targets.Balancer;

/// <summary>
/// l2bal's configuration file (<see cref="BalancerConfigFile.Parse"/>) and the options built from
/// it (<see cref="BalancerOptionsBuilder.Build"/>), as <c>l2bal run --config</c> and <c>check-config</c>
/// do: every problem is an error, never an exception. The values read, written back as
/// <c>NAME: VALUE</c> lines, read again as the same values.
/// </summary>
internal sealed class BalancerConfigTarget : TextTarget<BalancerConfigTarget.Result>
{
    private const string Path = "fuzz.conf";

    public override string Name => "l2bal-config";

    public override string Product => "l2bal";

    public override string EntryPoint => "BalancerConfigFile.Parse + BalancerOptionsBuilder.Build";

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        Utf8("""
            key-file: /etc/l2bal/cluster.key
            node-count 5    # five nodes
            node-id 4
            vip 198.18.0.20/16
            interface: ens3
            """),
        Utf8("""
            interface: veth-n1
            vip 198.18.0.10
            node-id: 1
            node-count: 64
            key-file: /k
            buckets 4096
            seed 0xdeadbeef
            cluster-id 7
            advert-interval 40ms
            dead-after 3
            mac-mode unicast-flood
            service tcp/1080
            service udp/53
            health socks5://127.0.0.1:1080
            health-interval 1s
            health-fall 3
            health-rise 2
            health-timeout 500ms
            control /run/l2bal.sock
            metrics 127.0.0.1:9181
            """),
        Utf8("interface eth0\nvip 198.18.0.10/32\nnode-id 1\nnode-count 1\nkey-file k\nhealth exec:/bin/true --x\nhealth-interval 2s\n"),
    ];

    public override IReadOnlyList<byte[]> Tokens { get; } =
    [
        .. BalancerSettings.All.Select(s => Utf8("\n" + s.Name + " ")),
        .. new[] { ":", "ms", "s", "m", "h", "tcp/", "udp/", "socks5://", "tcp://", "exec:", "none", "multicast", "unicast-flood", "/24", "0x" }.Select(Utf8),
    ];

    protected override Result Parse(string input)
    {
        var errors = new List<SettingError>();
        var values = BalancerConfigFile.Parse(input, Path, errors);
        var options = BalancerOptionsBuilder.Build(values, Path, out var buildErrors);
        return new Result(values, errors, options, buildErrors);
    }

    protected override bool IsAccepted(Result result) => result.FileErrors.Count == 0 && result.Options is not null;

    protected override void Check(byte[] input, Result result)
    {
        string text = Decode(input);
        Require((result.Options is null) == (result.BuildErrors.Count > 0), $"options {(result.Options is null ? "missing" : "built")} with {result.BuildErrors.Count} errors");
        foreach (var error in result.FileErrors.Concat(result.BuildErrors))
        {
            RequireLine(text, error.Position?.Line ?? 0, $"error '{error.Message}'");
        }

        var rewritten = string.Join('\n', result.Values.Select(v => $"{v.Setting.Name}: {v.Text}"));
        var again = BalancerConfigFile.Parse(rewritten, Path, []);
        Require(again.Select(v => (v.Setting, v.Text)).SequenceEqual(result.Values.Select(v => (v.Setting, v.Text))),
            "the values written back as NAME: VALUE lines read as other values");
    }

    internal readonly record struct Result(IReadOnlyList<SettingValue> Values, List<SettingError> FileErrors, BalancerOptions? Options, IReadOnlyList<SettingError> BuildErrors);
}
