using System.Globalization;

namespace L2Balance.Balancer.Cluster;

/// <summary>What a port's bucket is a hash of (<c>--affinity PROTO/PORT=MODE</c>, docs/design.md#buckets-and-the-hash).</summary>
internal enum AffinityMode
{
    /// <summary>The source address: every flow of one client on one node (the default; SOCKS needs it).</summary>
    Single,

    /// <summary>The source address and source port: each flow of one client may land on another node (stateless UDP, DNS).</summary>
    None,

    /// <summary>The source's /24: clients behind a farm of proxies sharing a network land on one node.</summary>
    Network,
}

/// <summary>One port's affinity rule: <c>udp/53=none</c>.</summary>
internal readonly record struct AffinityRule(string Protocol, int Port, AffinityMode Mode)
{
    /// <summary>The modes as <c>--affinity</c> spells them.</summary>
    public static readonly IReadOnlyList<(string Name, AffinityMode Mode)> Modes =
        [("single", AffinityMode.Single), ("none", AffinityMode.None), ("network", AffinityMode.Network)];

    /// <summary>IANA protocol number (the key of the digest and of nft's <c>meta l4proto</c>).</summary>
    public byte ProtocolNumber => Protocol == "tcp" ? (byte)6 : (byte)17;

    /// <summary>The mode as <c>--affinity</c> spells it.</summary>
    public static string ModeName(AffinityMode mode) => Modes.First(m => m.Mode == mode).Name;

    /// <summary>
    /// The rules that change anything, in a canonical order: <c>single</c> is the default, so a
    /// rule naming it is the same cluster as no rule (the ruleset and the config digest skip it).
    /// </summary>
    public static IReadOnlyList<AffinityRule> Effective(IEnumerable<AffinityRule> rules) =>
        [.. rules.Where(r => r.Mode != AffinityMode.Single).OrderBy(r => r.ProtocolNumber).ThenBy(r => r.Port)];

    /// <summary>The mode of a port: its rule's, else <see cref="AffinityMode.Single"/>.</summary>
    public static AffinityMode ModeOf(IEnumerable<AffinityRule> rules, string protocol, int port) =>
        rules.FirstOrDefault(r => r.Protocol == protocol && r.Port == port) is { Protocol: not null } rule ? rule.Mode : AffinityMode.Single;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Protocol}/{Port}={ModeName(Mode)}");
}
