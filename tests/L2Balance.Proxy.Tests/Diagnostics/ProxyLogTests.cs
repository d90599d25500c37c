using System.Net;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Rules;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Proxy.Tests.Diagnostics;

/// <summary>What ProxyLog writes: each event with its own id, negotiation failures rate-limited per outcome.</summary>
public sealed class ProxyLogTests : IDisposable
{
    private static readonly IPEndPoint Client = new(IPAddress.Parse("192.0.2.7"), 40000);
    private readonly string _file = Path.Combine(Path.GetTempPath(), $"l2proxy-log-{Guid.NewGuid():N}.log");

    public void Dispose() => File.Delete(_file);

    [Fact]
    public async Task SessionNegotiationAndProbe_WithDebug_AreLoggedWithTheirOwnIds()
    {
        var lines = await LogAsync(debug: 1, new ManualTimeProvider(), log =>
        {
            log.SessionFailed(RuleLog.Error, "tcp/connect", Client, "198.18.2.2:80", SessionOutcome.ConnectFailed, "ConnectionRefused");
            log.NegotiationFailed(Client, SessionOutcome.Malformed, "greeting: no methods");
            log.Probed(Client);
        });

        Assert.Collection(
            lines,
            l => Assert.Contains($"]: info[{EventIds.SessionFailed}]: error: tcp/connect {Client} -> 198.18.2.2:80: ConnectFailed: ConnectionRefused", l, StringComparison.Ordinal),
            l => Assert.Contains($"]: info[{EventIds.NegotiationFailed}]: negotiation: {Client}: Malformed: greeting: no methods", l, StringComparison.Ordinal),
            l => Assert.Contains($"]: debug[{EventIds.Probed}]: negotiation: {Client}: closed before sending anything", l, StringComparison.Ordinal));
        Assert.All(lines, l => Assert.Matches(@"^\S+ l2proxy\[\d+\]: (info|debug)\[\d+\]: ", l));
    }

    [Fact]
    public async Task NegotiationFailed_RepeatedWithin10s_IsLoggedOncePerOutcomeThenWithTheCountNotLogged()
    {
        var time = new ManualTimeProvider();
        var lines = await LogAsync(debug: 0, time, log =>
        {
            log.NegotiationFailed(Client, SessionOutcome.Malformed, "first");
            log.NegotiationFailed(Client, SessionOutcome.Malformed, "second");
            log.NegotiationFailed(Client, SessionOutcome.Malformed, "third");
            log.NegotiationFailed(Client, SessionOutcome.BadVersion, "other outcome");
            time.Advance(TimeSpan.FromSeconds(10));
            log.NegotiationFailed(Client, SessionOutcome.Malformed, "fourth");
        });

        Assert.Collection(
            lines,
            l => Assert.EndsWith("Malformed: first (logged once per 10 s per reason)", l, StringComparison.Ordinal),
            l => Assert.EndsWith("BadVersion: other outcome (logged once per 10 s per reason)", l, StringComparison.Ordinal),
            l => Assert.EndsWith("Malformed: fourth (logged once per 10 s per reason, 2 more since the last)", l, StringComparison.Ordinal));
    }

    [Fact]
    public async Task NegotiationFailed_WithDebug_IsLoggedEveryTime()
    {
        var lines = await LogAsync(debug: 1, new ManualTimeProvider(), log =>
        {
            log.NegotiationFailed(Client, SessionOutcome.Malformed, "first");
            log.NegotiationFailed(Client, SessionOutcome.Malformed, "second");
        });

        Assert.Equal(2, lines.Length);
    }

    [Fact]
    public async Task MetricsListening_OnLoopback_IsLoggedWithTheUrl()
    {
        var lines = await LogAsync(debug: 0, new ManualTimeProvider(), log => log.MetricsListening(new IPEndPoint(IPAddress.Loopback, 9100)));

        Assert.EndsWith($"info[{EventIds.MetricsListening}]: metrics at http://127.0.0.1:9100/metrics", Assert.Single(lines), StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryEventWithNetworkText_NameWithNewline_IsOneEscapedLine()
    {
        const string Forged = "evil\nl2proxy[1]: info[16]: forged\r\\";
        var lines = await LogAsync(debug: 1, new ManualTimeProvider(), log =>
        {
            log.AuthFailed(Client, Forged);
            log.RequestBlocked(new RuleVerdict(RuleAction.Block, RuleLog.Connect, null, null), "tcp/connect", Client, Forged);
            log.RequestPassed(new RuleVerdict(RuleAction.Pass, RuleLog.Connect, null, null), "tcp/connect", Client, Forged);
            log.SessionEnded(RuleLog.Disconnect, "tcp/connect", Client, Forged, 1, 2, TimeSpan.FromSeconds(1), Forged);
            log.SessionFailed(RuleLog.Error, "tcp/connect", Client, Forged, SessionOutcome.ResolveFailed, Forged);
            log.NegotiationFailed(Client, SessionOutcome.Malformed, Forged);
            log.ConfigWarning(Forged);
            log.Unexpected(Forged, new InvalidOperationException(Forged));
        });

        Assert.Equal(8, lines.Length);
        Assert.All(lines, l => Assert.Matches(@"^\S+ l2proxy\[\d+\]: (info|debug|warning|error)\[\d+\]: ", l));
        Assert.All(lines, l => Assert.Contains(@"evil\nl2proxy[1]: info[16]: forged\r\\", l, StringComparison.Ordinal));
    }

    private async Task<string[]> LogAsync(int debug, TimeProvider time, Action<ProxyLog> write)
    {
        var writer = new LogWriter([new LogTarget(LogTargetKind.File, _file)], []);
        await using (writer)
        {
            write(new ProxyLog(writer, debug, time));
        }

        return await File.ReadAllLinesAsync(_file);
    }
}
