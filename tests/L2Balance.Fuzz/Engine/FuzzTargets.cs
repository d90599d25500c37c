using L2Balance.Fuzz.Targets;
using L2Balance.Fuzz.Targets.Balancer;
using L2Balance.Fuzz.Targets.Proxy;

namespace L2Balance.Fuzz.Engine;

/// <summary>Every fuzz target, one per parser of both daemons (issues 13 and 14, "Fuzzing that counts").</summary>
public static class FuzzTargets
{
    /// <summary>The names, in the order runs report them.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. CreateAll().Select(t => t.Name)];

    /// <summary>A fresh instance of every target (a target may hold state such as a reusable HMAC).</summary>
    public static IReadOnlyList<FuzzTarget> CreateAll() =>
    [
        new Socks4RequestTarget(), new Socks5GreetingTarget(), new Socks5RequestTarget(), new UserPassRequestTarget(), new GssapiMessageTarget(), new GssapiDatagramTarget(),
        new UdpHeaderTarget(), new SockdConfTarget(), new UsersFileTarget(), new MetricsRequestTarget(), new SessionStateTarget(),
        new AdvertTarget(), new ArpFrameTarget(), new ControlRequestTarget(), new BalancerConfigTarget(),
    ];

    public static FuzzTarget Create(string name) =>
        CreateAll().SingleOrDefault(t => t.Name == name) ?? throw new ArgumentException($"no fuzz target '{name}' (targets: {string.Join(", ", Names)})", nameof(name));

    /// <summary>
    /// The targets of <c>proxy</c>, <c>l2bal</c> or <c>all</c> (the metrics endpoint, common to both, is in
    /// each), or targets by name, separated by commas.
    /// </summary>
    public static IReadOnlyList<FuzzTarget> Select(string selector) => selector switch
    {
        "all" => CreateAll(),
        "proxy" or "l2bal" => [.. CreateAll().Where(t => t.Product == selector || t.Product == "common")],
        _ => [.. selector.Split(',').Select(Create)],
    };
}
