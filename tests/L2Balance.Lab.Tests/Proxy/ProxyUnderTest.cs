using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// Which SOCKS server the lab tests drive. The product is l2proxy; env
/// L2PROXY_UNDER_TEST=sockd|microsocks swaps in Debian's Dante or microsocks, only to check that
/// these tests pass against a known-good server and fail where it lacks a feature.
/// </summary>
public enum ProxyKind
{
    L2Proxy,
    Sockd,
    Microsocks,
}

public static class ProxyUnderTest
{
    public static ProxyKind Kind { get; } = (Environment.GetEnvironmentVariable("L2PROXY_UNDER_TEST") ?? "l2proxy").ToLowerInvariant() switch
    {
        "sockd" or "dante" or "danted" => ProxyKind.Sockd,
        "microsocks" => ProxyKind.Microsocks,
        _ => ProxyKind.L2Proxy,
    };

    /// <summary>
    /// Reports the calling test as skipped when the server under test is one of
    /// <paramref name="lacking"/>: it lacks <paramref name="feature"/>, so the test cannot judge it.
    /// Needs [SkippableFact] or [SkippableTheory].
    /// </summary>
    public static void SkipWhere(string feature, params ProxyKind[] lacking) =>
        Skip.If(lacking.Contains(Kind), $"{Kind} is under test (L2PROXY_UNDER_TEST) and lacks {feature}");

    /// <summary>Skips the calling test unless l2proxy is under test: <paramref name="feature"/> is l2proxy's own.</summary>
    public static void SkipUnlessL2Proxy(string feature) => SkipWhere(feature, ProxyKind.Sockd, ProxyKind.Microsocks);

    /// <summary>Dante's server binary: Debian ships it as danted (package dante-server).</summary>
    public static string Danted => LabBinaries.Find("danted") ?? LabBinaries.Require("sockd", "dante-server");

    /// <summary>
    /// Makes a sockd.conf runnable by Dante itself as root in the lab: log to stderr, no auth
    /// methods beyond "none", privileges named explicitly.
    /// </summary>
    public static string ForDanted(string conf, string? extra = null) =>
        "logoutput: stderr\nclientmethod: none\nsocksmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n"
        + (extra ?? string.Empty) + conf;
}
