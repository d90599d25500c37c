using System.Globalization;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Kernel;
using L2Balance.Common.CommandLine;

namespace L2Balance.Balancer.Config;

/// <summary>
/// One setting of <c>l2bal run</c>: the flag <c>--NAME VALUE</c>, and the line <c>NAME VALUE</c> of a
/// <c>--config</c> file. <see cref="DefaultText"/> is the default as help shows it, written from
/// <see cref="BalancerOptions"/>.
/// </summary>
internal sealed record Setting(string Name, string HelpName, string Description, string? DefaultText = null, bool Repeatable = false)
{
    /// <summary>The flag: <c>--NAME</c>.</summary>
    public string Flag => "--" + Name;
}

/// <summary>A value of a setting as given: from a flag (no position) or from a line of a configuration file.</summary>
internal sealed record SettingValue(Setting Setting, string Text, ConfigPosition? Position = null)
{
    /// <summary>The setting as the user wrote it: <c>--node-id</c> on the command line, <c>node-id</c> in a file.</summary>
    public string Label => Position is null ? Setting.Flag : Setting.Name;

    /// <summary>An error about the value: <c>--name 'text': problem</c>, or <c>FILE:LINE:COLUMN: name 'text': problem</c>.</summary>
    public SettingError Problem(string problem) => new(Position, $"{Where}{Label} '{Text}': {problem}");

    /// <summary>An error about the value in relation to another: <c>--node-id 4 is larger than --node-count 3</c>.</summary>
    public SettingError Relation(string relation, SettingValue other) => new(Position, $"{Where}{Label} {Text} {relation} {other.Label} {other.Text}");

    private string Where => Position is { } position ? $"{position}: " : "";
}

/// <summary>An error in the settings; <see cref="Position"/> (null for a flag or a missing setting) orders a file's errors by line.</summary>
internal readonly record struct SettingError(ConfigPosition? Position, string Message)
{
    /// <summary>The messages, a file's first and in the order of their lines, then the others in the order found.</summary>
    public static IReadOnlyList<string> InOrder(IEnumerable<SettingError> errors) =>
        [.. errors.OrderBy(e => e.Position is null).ThenBy(e => e.Position?.Line).ThenBy(e => e.Position?.Column).Select(e => e.Message)];
}

/// <summary>Where a value stands in a configuration file; 1-based, printed as <c>FILE:LINE:COLUMN</c>.</summary>
internal readonly record struct ConfigPosition(string File, int Line, int Column)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{File}:{Line}:{Column}");
}

/// <summary>Every setting of <c>l2bal run</c>, with the bounds that are checked and shown in help.</summary>
internal static class BalancerSettings
{
    public const int MaxBuckets = 65536;
    public const int MaxDeadAfter = 100;
    public const int MaxHealthCount = 100;
    public static readonly TimeSpan MinAdvertInterval = TimeSpan.FromMilliseconds(5);
    public static readonly TimeSpan MaxAdvertInterval = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan MinHealthInterval = TimeSpan.FromMilliseconds(5);
    public static readonly TimeSpan MaxHealthInterval = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan MinHealthTimeout = TimeSpan.FromMilliseconds(1);
    public static readonly TimeSpan MaxHealthTimeout = TimeSpan.FromSeconds(60);

    public static readonly Setting Interface = new("interface", "IF", "The segment interface, e.g. eth0 (required)");
    public static readonly Setting Vip = new(
        "vip", "ADDR/PREFIX", "The shared address, e.g. 198.18.0.10/24 or fdc6:1200:10::a/64 (required); give it twice for one address of each family", Repeatable: true);
    public static readonly Setting NodeId = new("node-id", "K", "This node's id, 1 to N (required)");
    public static readonly Setting NodeCount = new("node-count", "N", $"Nodes in the cluster, 1 to {MembershipView.MaxNodes} (required)");
    public static readonly Setting KeyFile = new("key-file", "FILE", "The cluster's shared key; make one with 'l2bal genkey --output FILE' (required)");
    public static readonly Setting Buckets = new("buckets", "B", $"Hash buckets, N to {MaxBuckets}", Whole(BalancerOptions.DefaultBuckets));
    public static readonly Setting Seed = new("seed", "S", "Hash seed, decimal or 0x hex; without it, the cluster id");
    public static readonly Setting ClusterId = new("cluster-id", "ID", "Cluster id in adverts, decimal or 0x hex; without it, the IPv4 VIP as a number (an IPv6 VIP alone: its 32-bit words XORed)");
    public static readonly Setting AdvertInterval = new(
        "advert-interval", "DURATION", $"Time between adverts, {Range(MinAdvertInterval, MaxAdvertInterval)}", DurationSyntax.Format(BalancerOptions.DefaultAdvertInterval));
    public static readonly Setting DeadAfter = new(
        "dead-after", "K", $"Missed adverts before a peer is dead, 2 to {MaxDeadAfter}", Whole(BalancerOptions.DefaultDeadAfterMisses));
    public static readonly Setting MacModeSetting = new("mac-mode", "MODE", "multicast or unicast-flood", MacModeName(BalancerOptions.DefaultMacMode));
    public static readonly Setting Service = new(
        "service", "P/PORT", "A service on the VIP, e.g. tcp/1080; repeatable; new flows to other ports are dropped. Without it, every port", Repeatable: true);
    public static readonly Setting Affinity = new(
        "affinity", "P/PORT=MODE", "Hash key of a --service port: single (source address), none (address and port) or network (source /24); repeatable. Without it, single", Repeatable: true);
    public static readonly Setting Health = new(
        "health", "PROBE", "Probe of a local service: socks5://ADDR:PORT, tcp://ADDR:PORT, dns://ADDR:PORT/NAME, exec:COMMAND or none; repeatable: any failing probe makes the node unhealthy. Without it, none",
        HealthProbeSpec.None.ToString(), Repeatable: true);
    public static readonly Setting HealthInterval = new(
        "health-interval", "DURATION", $"Time between health checks, {Range(MinHealthInterval, MaxHealthInterval)}", DurationSyntax.Format(BalancerOptions.DefaultHealthInterval));
    public static readonly Setting HealthFall = new(
        "health-fall", "N", $"Failed probes before unhealthy, 1 to {MaxHealthCount} (a refused connect: at once)", Whole(BalancerOptions.DefaultHealthFall));
    public static readonly Setting HealthRise = new(
        "health-rise", "N", $"Good probes before healthy again, 1 to {MaxHealthCount}", Whole(BalancerOptions.DefaultHealthRise));
    public static readonly Setting HealthTimeout = new(
        "health-timeout", "DURATION", $"A probe unanswered this long fails, {Range(MinHealthTimeout, MaxHealthTimeout)}", DurationSyntax.Format(BalancerOptions.DefaultHealthTimeout));
    public static readonly Setting Control = new("control", "PATH", "Control socket; without it, the abstract socket @l2bal of this network namespace");
    public static readonly Setting ControlGroupSetting = new(
        "control-group", "GROUP", "Members of GROUP may drain and undrain this node over the control socket; without it, root only (anyone may read status)");
    public static readonly Setting Metrics = new("metrics", "ADDR:PORT", "Serve Prometheus metrics on http://ADDR:PORT/metrics; without it, none");
    public static readonly Setting PreviousKeyFile = new(
        "previous-key-file", "FILE", "During a key change, the key being replaced: accepted too, and signed with until every live peer has the new key");
    public static readonly Setting AdvertVersion = new(
        "advert-version", "V", "Highest advert version sent and accepted, 1 or 2 (1: as a version-1 daemon, during an upgrade)", Whole(BalancerOptions.DefaultAdvertVersion));

    public static readonly Setting WeightSetting = new(
        "weight", "W", $"This node's weight, {Ownership.MinWeight} to {Ownership.MaxWeight}: its share of the buckets is its weight over the live nodes' total (needs advert version 2)",
        Whole(Ownership.DefaultWeight));

    public static readonly Setting Migrate = new(
        "migrate", "ADDR[:PORT]",
        "Live migration of sessions (issue 19): this node's own address (not the VIP) where peers move sessions to, advertised; once per family; PORT 1081 unless given. Without it, sessions never move",
        Repeatable: true);

    /// <summary>In the order help lists them.</summary>
    public static readonly IReadOnlyList<Setting> All =
    [
        Interface, Vip, NodeId, NodeCount, KeyFile, Buckets, Seed, ClusterId, AdvertInterval, DeadAfter, MacModeSetting, Service, Affinity,
        Health, HealthInterval, HealthFall, HealthRise, HealthTimeout, Control, ControlGroupSetting, Metrics, PreviousKeyFile, AdvertVersion, WeightSetting,
        Migrate,
    ];

    /// <summary>The name of a MAC mode, as <c>--mac-mode</c> takes it.</summary>
    public static string MacModeName(MacMode mode) => mode == MacMode.UnicastFlood ? "unicast-flood" : "multicast";

    /// <summary>"5ms to 10s", as help and messages state a duration's bounds.</summary>
    public static string Range(TimeSpan min, TimeSpan max) => $"{DurationSyntax.Format(min)} to {DurationSyntax.Format(max)}";

    private static string Whole(int value) => value.ToString(CultureInfo.InvariantCulture);
}
