using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using L2Balance.Tests.Common;
using Xunit;
using static L2Balance.Lab.Tests.Proxy.Gssapi.GssapiLabFixture;

namespace L2Balance.Lab.Tests.Proxy.Gssapi;

/// <summary>
/// l2proxy's GSS-API method (RFC 1961, issue 20) against a lab KDC, with a client written from the RFC on
/// python3-gssapi. Facts come from the client's view of the wire and from the proxy's counters.
/// </summary>
[Collection(GssapiLabGroup.Name)]
public sealed class GssapiTests(GssapiLabFixture lab)
{
    private static string Echo => $"{ProxyLab.TargetV4}:{TargetServers.TcpEchoPort}";

    private static string UdpEcho => $"{ProxyLab.TargetV4}:{TargetServers.UdpEchoPort}";

    /// <summary>Every level as the client names it and as the proxy's reply carries it.</summary>
    public static TheoryData<string, int> Levels => new() { { "clear", 0 }, { "integrity", 1 }, { "confidentiality", 2 }, { "per-message", 3 } };

    [SkippableTheory(typeof(LabUnavailableException))]
    [MemberData(nameof(Levels))]
    public async Task Connect_EachProtectionLevel_EchoesThroughTheProxy(string level, int wire)
    {
        var before = await lab.ScrapeAsync();
        var result = await lab.ClientAsync(lab.AliceCache, "--service", Service, "--level", level, "--connect", Echo, "--payload", "200000");
        Assert.True(NumberOf(result, "method") == 1 && TextOf(result, "auth") == "ok" && NumberOf(result, "level") == wire && NumberOf(result, "reply") == 0 && TextOf(result, "echo") == "ok",
            $"{result}\n{lab.Describe()}");
        var after = await lab.ScrapeAsync();
        Assert.Equal(1, Authenticated(after, level.Replace('-', '_')) - Authenticated(before, level.Replace('-', '_')));
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect_PrincipalNoRulePasses_IsRefusedByTheSocksRule()
    {
        // socks pass names user alice@L2LAB.TEST: the principal is the user rules match.
        var result = await lab.ClientAsync(lab.BobCache, "--service", Service, "--level", "integrity", "--connect", Echo, "--payload", "10");
        Assert.True(TextOf(result, "auth") == "ok" && NumberOf(result, "reply") == 2, $"{result}\n{lab.Describe()}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Authenticate_TicketForAnotherService_GetsFailureMessage()
    {
        await AssertRefusedAsync("wrong_service", r => TextOf(r, "auth") == "mtyp 0xff", lab.AliceCache, "--service", "other@vip.l2lab.test", "--level", "clear");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Authenticate_ReplayedToken_GetsFailureMessage()
    {
        // Sent once (authenticated), then again: the replay cache refuses it.
        var token = await CaptureTokenAsync("replay", "auth", "--save-token");
        await ReplayAsync(token, "replay");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Authenticate_TokenOlderThanClockSkew_GetsFailureMessage()
    {
        // Captured, never sent: the authenticator's time is what ages.
        var token = await CaptureTokenAsync("skew", "captured", "--save-token", "--capture-only");
        await Task.Delay(TimeSpan.FromSeconds(ClockSkewSeconds + 2));
        await ReplayAsync(token, "clock_skew");
    }

    [SkippableTheory(typeof(LabUnavailableException))]
    [InlineData("--raw-token", "6082000106", "defective")]
    [InlineData("--oversize", "20000", "defective")]
    [InlineData("--send-level", "7", "protection_level")]
    public async Task Authenticate_BadInput_GetsFailureMessageAndCounter(string option, string value, string reason)
    {
        await AssertRefusedAsync(reason, r => TextOf(r, "auth") == "abort" || TextOf(r, "level") == "mtyp 0xff", lab.AliceCache, "--service", Service, "--level", "clear", option, value);
    }

    [SkippableTheory(typeof(LabUnavailableException))]
    [MemberData(nameof(Levels))]
    public async Task UdpAssociate_EachProtectionLevel_EchoesEveryDatagram(string level, int wire)
    {
        // Above clear each datagram, SOCKS UDP header included, is one wrapped encapsulation message both ways (RFC 1961 section 5).
        var result = await lab.ClientAsync(lab.AliceCache, "--service", Service, "--level", level, "--udp", "20", "--udp-target", UdpEcho);
        Assert.True(NumberOf(result, "level") == wire && NumberOf(result, "reply") == 0 && NumberOf(result, "udp_echoed") == 20
            && NumberOf(result, "udp_extra") == 0 && NumberOf(result, "udp_unencrypted") == 0, $"{result}\n{lab.Describe()}");
    }

    [SkippableTheory(typeof(LabUnavailableException))]
    [InlineData("integrity")]
    [InlineData("confidentiality")]
    public async Task UdpAssociate_ReplayedUnwrappedOrGarbageDatagram_IsACountedDrop(string level)
    {
        // Behind the first datagram: the same bytes again, the datagram unwrapped, a token of random bytes; none reaches the target.
        var before = await lab.ScrapeAsync();
        var result = await lab.ClientAsync(lab.AliceCache, "--service", Service, "--level", level, "--udp", "5", "--udp-target", UdpEcho, "--udp-bad");
        Assert.True(NumberOf(result, "reply") == 0 && NumberOf(result, "udp_echoed") == 5 && NumberOf(result, "udp_extra") == 0, $"{result}\n{lab.Describe()}");
        Assert.Equal(3, UdpDrops(await lab.ScrapeAsync(), "GssapiToken") - UdpDrops(before, "GssapiToken"));
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Authenticate_NecClientWithNecgssapiRule_IsServed()
    {
        // clientcompatibility: necgssapi in the rule of NecClient's address: the level message travels unwrapped both ways.
        var result = await lab.ClientAsync(lab.AliceCache, "--service", Service, "--level", "integrity", "--nec", "--source", NecClient.ToString(), "--connect", Echo, "--payload", "1000");
        Assert.True(TextOf(result, "auth") == "ok" && NumberOf(result, "level") == 1 && NumberOf(result, "reply") == 0 && TextOf(result, "echo") == "ok", $"{result}\n{lab.Describe()}");
    }

    [SkippableTheory(typeof(LabUnavailableException))]
    [InlineData("integrity")]
    [InlineData("confidentiality")]
    public async Task Bind_WrappingLevel_EchoesThroughTheProxy(string level)
    {
        // Both replies and the relayed data are encapsulation messages; the client itself connects back and echoes.
        var result = await lab.ClientAsync(lab.AliceCache, "--service", Service, "--level", level, "--bind", "--payload", "100000");
        Assert.True(NumberOf(result, "reply") == 0 && NumberOf(result, "second_reply") == 0 && TextOf(result, "echo") == "ok", $"{result}\n{lab.Describe()}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Relay_TokenThatDoesNotUnwrap_EndsTheSessionWithLineAndCounter()
    {
        // After the CONNECT at integrity, an encapsulation message of random bytes: no data goes on, the session ends.
        await AssertRefusedAsync("defective", r => NumberOf(r, "reply") == 0 && TextOf(r, "after_garbage") == "closed", lab.AliceCache, "--service", Service, "--level", "integrity", "--connect", Echo, "--garbage-data");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Authenticate_LevelTheRuleDoesNotAllow_GetsFailureMessage()
    {
        // NecClient's rule has gssapi.enctype: integrity confidentiality; it asks for clear.
        await AssertRefusedAsync("protection_level", r => TextOf(r, "auth") == "ok" && TextOf(r, "level") == "mtyp 0xff", lab.AliceCache, "--service", Service, "--level", "clear", "--nec", "--source", NecClient.ToString());
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Authenticate_NecClientWithoutNecgssapi_GetsFailureMessage()
    {
        // The rule of the usual client address has no necgssapi: an unwrapped level octet is a defective per-message token.
        await AssertRefusedAsync("defective", r => TextOf(r, "auth") == "ok" && TextOf(r, "level") == "mtyp 0xff", lab.AliceCache, "--service", Service, "--level", "integrity", "--nec");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Authenticate_ExpiredTicket_GetsFailureMessage()
    {
        // Carol's tickets live 3 s: her service ticket is fetched while valid, then sent once it and the proxy's skew have passed
        // (the client rewrites the cache's copy of the end time: MIT's initiator would not send an expired ticket).
        var issued = DateTime.UtcNow;
        var cache = await lab.Realm.KinitAsync(lab.Lab.Client, "carol", CarolPassword, StepTimeout, "3s");
        var fresh = await lab.ClientAsync(cache, "--service", Service, "--level", "clear");
        Assert.True(TextOf(fresh, "auth") == "ok", $"{fresh}\n{lab.Describe()}");
        var wait = issued + TimeSpan.FromSeconds(3 + ClockSkewSeconds + 2) - DateTime.UtcNow;
        await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
        await AssertRefusedAsync("expired", r => TextOf(r, "auth") == "mtyp 0xff", cache, "--service", Service, "--level", "clear", "--stretch-tickets");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task HealthProbeGreeting_GssapiOnlyProxy_SelectsGssapi()
    {
        // l2bal's socks5:// probe greeting (l2bal/Health/HealthProbe.cs): 05 03 00 01 02.
        using var socket = await lab.Lab.Client.ConnectTcpAsync(new IPEndPoint(ProxyLab.ProxyInsideV4, Port), TimeSpan.FromSeconds(5));
        await socket.SendAsync(new byte[] { 5, 3, 0, 1, 2 }, SocketFlags.None);
        var reply = new byte[2];
        Assert.Equal(2, await socket.ReceiveAsync(reply, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(new byte[] { 5, 1 }, reply);
    }

    /// <summary>
    /// Runs the client with <paramref name="cache"/>'s tickets; asserts what it saw (<paramref name="saw"/>), one more
    /// <c>l2proxy_gssapi_failures_total{reason}</c> and one more event-17 line of <paramref name="reason"/>.
    /// </summary>
    private async Task AssertRefusedAsync(string reason, Func<JsonElement, bool> saw, string cache, params string[] args)
    {
        var before = await lab.ScrapeAsync();
        int lines = lab.FailureLines(reason);
        var result = await lab.ClientAsync(cache, args);
        Assert.True(saw(result), $"{result}\n{lab.Describe()}");
        var after = await lab.ScrapeAsync();
        Assert.True(Failures(after, reason) - Failures(before, reason) == 1,
            $"{reason}: {string.Join(", ", after.Where(m => m.Key.Contains("gssapi_failures", StringComparison.Ordinal)))}\n{lab.Describe()}");
        Assert.Equal(lines + 1, await lab.WaitForFailureLinesAsync(reason, lines + 1));
    }

    /// <summary>Alice's first context token, written to a file by the client (<paramref name="done"/> says "ok" when it is).</summary>
    private async Task<string> CaptureTokenAsync(string name, string done, params string[] options)
    {
        var token = Path.Combine(lab.Lab.Network.CreateTempDirectory(name), "token");
        var result = await lab.ClientAsync(lab.AliceCache, ["--service", Service, "--level", "clear", options[0], token, .. options[1..]]);
        Assert.True(TextOf(result, done) == "ok", $"{result}\n{lab.Describe()}");
        return token;
    }

    /// <summary>Sends <paramref name="token"/> as a new client's first token: the failure message and one more <paramref name="reason"/>.</summary>
    private async Task ReplayAsync(string token, string reason)
    {
        await AssertRefusedAsync(reason, r => TextOf(r, "auth") == "abort", lab.AliceCache, "--service", Service, "--replay-token", token);
    }
}
