using System.Net.Sockets;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Control;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.L2Bal.Tests.Control;

/// <summary>Who may steer a node over its control socket (docs/design.md#control-and-status), as pure decisions and on a real socket.</summary>
public sealed class ControlAccessTests
{
    private const uint Nobody = 65534;
    private const uint Operators = 4242;
    private static readonly PeerCredentials Root = new(1, 0, 0, []);
    private static readonly PeerCredentials Stranger = new(2, Nobody, Nobody, []);
    private static readonly PeerCredentials MemberBySupplementaryGroup = new(3, 1000, 1000, [27, Operators]);
    private static readonly PeerCredentials MemberByPrimaryGroup = new(4, 1001, Operators, []);

    [Theory]
    [InlineData("status", true)]
    [InlineData("status --json", true)]
    [InlineData("owner 198.18.64.10", true)]
    [InlineData("drain", false)]
    [InlineData("undrain", false)]
    [InlineData("migrate 12", false)]
    [InlineData("", false)]
    [InlineData("statusx", false)]
    public void Classify_Request_OnlyStatusAndOwnerAreReads(string request, bool read) =>
        Assert.Equal(read ? ControlRequestKind.Read : ControlRequestKind.Change, ControlAccess.Classify(request));

    [Fact]
    public void MayServe_ReadFromAnyone_IsServed()
    {
        Assert.True(ControlAccess.MayServe(ControlRequestKind.Read, Stranger, null));
        Assert.True(ControlAccess.MayServe(ControlRequestKind.Read, Stranger, Operators));
    }

    [Fact]
    public void MayServe_ChangeFromAStranger_IsRefusedWithOrWithoutAGroup()
    {
        Assert.False(ControlAccess.MayServe(ControlRequestKind.Change, Stranger, null));
        Assert.False(ControlAccess.MayServe(ControlRequestKind.Change, Stranger, Operators));
    }

    [Fact]
    public void MayServe_ChangeFromRoot_IsServedWithoutAGroup() =>
        Assert.True(ControlAccess.MayServe(ControlRequestKind.Change, Root, null));

    [Fact]
    public void MayServe_ChangeFromAMemberOfTheControlGroup_IsServedByPrimaryOrSupplementaryGroup()
    {
        Assert.True(ControlAccess.MayServe(ControlRequestKind.Change, MemberBySupplementaryGroup, Operators));
        Assert.True(ControlAccess.MayServe(ControlRequestKind.Change, MemberByPrimaryGroup, Operators));
        Assert.False(ControlAccess.MayServe(ControlRequestKind.Change, MemberBySupplementaryGroup, null));
    }

    [Theory]
    [InlineData(0u, Nobody, null, true)]
    [InlineData(Nobody, Nobody, null, true)]
    [InlineData(999u, 0u, 999u, true)]
    [InlineData(Nobody, 0u, 999u, false)]
    [InlineData(Nobody, 0u, null, false)]
    [InlineData(1000u, 1001u, 999u, false)]
    public void TrustsDaemon_Listener_OnlyRootTheDaemonAccountOrTheCaller(uint listener, uint caller, uint? daemonAccount, bool trusted) =>
        Assert.Equal(trusted, ControlAccess.TrustsDaemon(listener, caller, daemonAccount));

    [Theory]
    [InlineData("drain", "drain")]
    [InlineData("undrain now", "undrain")]
    [InlineData("dr\u001bain", "?")]
    [InlineData("DRAIN", "?")]
    [InlineData("averyveryverylongword", "?")]
    [InlineData("", "?")]
    public void VerbOf_Request_IsALowercaseWordOrAQuestionMark(string request, string verb) =>
        Assert.Equal(verb, ControlAccess.VerbOf(request));

    [Fact]
    public void PeerCredentials_OfAConnectedUnixSocket_AreThisProcesssOnBothEnds()
    {
        var name = "\0l2bal-test-" + Guid.NewGuid().ToString("N");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(name));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        client.Connect(new UnixDomainSocketEndPoint(name));
        using var server = listener.Accept();
        foreach (var end in new[] { client, server })
        {
            var peer = PeerCredentials.Of(end);
            Assert.Equal(Environment.ProcessId, peer.Pid);
            Assert.Equal(SystemAccounts.EffectiveUserId, peer.Uid);
            Assert.Equal(SystemAccounts.EffectiveGroupId, peer.Gid);
        }
    }

    [Fact]
    public async Task ControlServer_ReadAndChangeFromAGroupMember_AreQueuedForTheLoop()
    {
        var name = "\0l2bal-test-" + Guid.NewGuid().ToString("N");
        // The caller is in the control group whoever runs the tests (root or not).
        await using var server = new ControlServer(name, new ControlGroup("self", SystemAccounts.EffectiveGroupId), new BalancerCounters(), new BalancerLog(TextWriter.Null));
        foreach (var request in new[] { "status", "drain" })
        {
            var answer = ControlServer.SendAsync(name, request, TimeSpan.FromSeconds(5));
            var queued = await server.Requests.ReadAsync().AsTask().WithTimeout();
            Assert.Equal(request, queued.Text);
            queued.Reply.SetResult("ok\n");
            Assert.Equal("ok\n", await answer.WithTimeout());
        }
    }
}
