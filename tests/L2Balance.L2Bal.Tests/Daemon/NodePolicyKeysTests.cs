using L2Balance.Balancer.Daemon;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Daemon;

/// <summary>
/// The node policy's advert decisions without a network: which version and key the next advert
/// goes out with (docs/design.md#advert-v2, #key-rollover), the foreign key ids it reports, and
/// the rule that nothing failing the HMAC moves a node that has verified a peer.
/// </summary>
public class NodePolicyKeysTests
{
    private const uint Old = 0x0a0a0a0a;
    private const uint New = 0x0b0b0b0b;
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(40);
    private static readonly TimeSpan Dead = TimeSpan.FromMilliseconds(120);
    private static readonly MacAddress Stranger = MacAddress.Parse("02:00:00:00:00:66");

    /// <summary>After its dead time of listening: the time the tests decide at.</summary>
    private static readonly TimeSpan Listened = Dead + Ms(1);

    private static NodePolicy NewPolicy(int self, uint current, uint previous = 0, byte highest = 2, TimeSpan? startedAt = null)
    {
        var policy = new NodePolicy(self, 1_000, Interval, Dead, Interval * 2, probe: null, buckets: 64);
        policy.UseKeys(current, previous, highest);
        policy.StartListening(startedAt ?? TimeSpan.Zero);
        return policy;
    }

    private static TimeSpan Ms(double ms) => TimeSpan.FromMilliseconds(ms);

    [Fact]
    public void ChooseAdvert_NoLivePeer_SendsTheHighestVersionUnderTheCurrentKey()
    {
        Assert.Equal(new AdvertChoice(2, New, Old, AlsoSendV2: false), NewPolicy(1, New, Old).ChooseAdvert([], Listened));
        Assert.Equal(new AdvertChoice(2, Old, New, AlsoSendV2: false), NewPolicy(1, New, Old).ChooseAdvert([], Ms(1)));
        Assert.Equal(new AdvertChoice(2, New, 0, AlsoSendV2: false), NewPolicy(1, New).ChooseAdvert([], Listened));
    }

    [Fact]
    public void ChooseAdvert_LivePeerOnVersion1_SendsVersion1WithAVersion2Copy()
    {
        var policy = NewPolicy(1, Old);
        policy.OnAdvertAccepted(2, new AdvertEnvelope(1, Old, 0), Ms(10));
        policy.OnAdvertAccepted(3, new AdvertEnvelope(2, Old, 0), Ms(10));
        Assert.Equal(new AdvertChoice(1, Old, 0, AlsoSendV2: true), policy.ChooseAdvert([2, 3], Listened));
        // Once node 2 is gone (not live), version 2 alone.
        Assert.Equal(new AdvertChoice(2, Old, 0, AlsoSendV2: false), policy.ChooseAdvert([3], Listened));
    }

    [Fact]
    public void ChooseAdvert_PinnedToVersion1_SendsVersion1Only()
    {
        var policy = NewPolicy(1, Old, highest: 1);
        policy.OnAdvertAccepted(2, new AdvertEnvelope(2, Old, 0), Ms(10));
        Assert.Equal(new AdvertChoice(1, Old, 0, AlsoSendV2: false), policy.ChooseAdvert([2], Listened));
    }

    [Fact]
    public void OnAdvertAccepted_Version1CopyOfAnUpgradedPeer_KeepsItAtVersion2UntilADeadTimePasses()
    {
        var policy = NewPolicy(1, Old);
        policy.OnAdvertAccepted(2, new AdvertEnvelope(2, Old, 0), Ms(10));
        policy.OnAdvertAccepted(2, new AdvertEnvelope(1, Old, 0), Ms(11));
        Assert.Equal(2, policy.KeysOf(2)!.Value.Version);
        Assert.Equal(2, policy.ChooseAdvert([2], Listened).Version);
        // Only version 1 for longer than a dead time: the peer was replaced by a version-1 daemon.
        policy.OnAdvertAccepted(2, new AdvertEnvelope(1, Old, 0), Ms(11) + Dead + Ms(1));
        Assert.Equal(1, policy.ChooseAdvert([2], Listened).Version);
    }

    [Fact]
    public void ChooseAdvert_LivePeerWithoutTheNewKey_SignsWithThePreviousAndNamesTheNew()
    {
        var policy = NewPolicy(1, New, Old);
        policy.OnAdvertAccepted(2, new AdvertEnvelope(2, Old, 0), Ms(10));
        policy.OnAdvertAccepted(3, new AdvertEnvelope(2, Old, New), Ms(10));
        Assert.Equal(new AdvertChoice(2, Old, New, false), policy.ChooseAdvert([2, 3], Listened));
        // A version-1 peer verified under the new key accepts it.
        policy.OnAdvertAccepted(2, new AdvertEnvelope(1, New, 0), Ms(10) + Dead + Ms(1));
        Assert.Equal(new AdvertChoice(1, New, Old, true), policy.ChooseAdvert([2, 3], Listened));
        // A dead peer does not hold the change back.
        policy.OnAdvertAccepted(2, new AdvertEnvelope(2, Old, 0), Ms(500));
        Assert.Equal(New, policy.ChooseAdvert([3], Listened).SigningKeyId);
    }

    [Fact]
    public void ChooseAdvert_WhileListeningAfterTheStart_SignsWithThePreviousKey()
    {
        // The peers heard first may accept the new key while one not heard yet holds only the old.
        var policy = NewPolicy(1, New, Old);
        policy.OnAdvertAccepted(2, new AdvertEnvelope(2, Old, New), Ms(10));
        Assert.Equal(Old, policy.ChooseAdvert([2], Ms(20)).SigningKeyId);
        Assert.Equal(New, policy.ChooseAdvert([2], Listened).SigningKeyId);
    }

    /// <summary>
    /// Three nodes on the old key are restarted one by one with the new key and the old as
    /// previous, then one by one with the new key alone: after every advert each node's signing
    /// key is one that every other node verifies, so no two groups ever form.
    /// </summary>
    [Fact]
    public void RollingKeyChange_EveryStage_EveryAdvertIsVerifiedByEveryPeer()
    {
        var held = new Dictionary<int, (uint Current, uint Previous)> { [1] = (Old, 0), [2] = (Old, 0), [3] = (Old, 0) };
        var policies = held.ToDictionary(h => h.Key, h => NewPolicy(h.Key, h.Value.Current, h.Value.Previous));
        var t = Ms(0);
        var stages = new List<(int Node, uint Current, uint Previous)> { (1, New, Old), (2, New, Old), (3, New, Old), (1, New, 0), (2, New, 0), (3, New, 0) };
        foreach (var (node, current, previous) in stages)
        {
            held[node] = (current, previous);
            policies[node] = NewPolicy(node, current, previous, startedAt: t);
            for (var round = 0; round < 4; round++, t += Interval)
            {
                foreach (var sender in held.Keys)
                {
                    var choice = policies[sender].ChooseAdvert(held.Keys.Where(k => k != sender && policies[sender].KeysOf(k) is not null), t);
                    foreach (var receiver in held.Keys.Where(k => k != sender))
                    {
                        var (c, p) = held[receiver];
                        Assert.True(choice.SigningKeyId == c || choice.SigningKeyId == p,
                            $"stage node {node} → ({current:x}, {previous:x}), round {round}: node {sender} signs with {choice.SigningKeyId:x}, node {receiver} holds ({c:x}, {p:x})");
                        policies[receiver].OnAdvertAccepted(sender, new AdvertEnvelope(2, choice.SigningKeyId, choice.AlsoAccepts), t);
                    }
                }
            }
        }
        Assert.All(policies.Values, p => Assert.Equal(New, p.ChooseAdvert([1, 2, 3], t).SigningKeyId));
    }

    [Fact]
    public void OnForeignKey_NewRepeatedAndReturning_IsReportedAndDueForTheLogOnlyWhenNew()
    {
        var policy = NewPolicy(1, Old);
        Assert.True(policy.OnForeignKey(New, Stranger, Ms(10)));
        Assert.False(policy.OnForeignKey(New, Stranger, Ms(20)));
        var heard = Assert.Single(policy.ForeignKeys(Ms(30)));
        Assert.Equal((New, 2L), (heard.KeyId, heard.Count));
        Assert.Empty(policy.ForeignKeys(Ms(20) + Dead + Ms(1)));
        Assert.True(policy.OnForeignKey(New, Stranger, Ms(20) + Dead + Ms(1)));
    }

    [Fact]
    public void OnForeignKey_ForgerInventingIds_KeepsABoundedTable()
    {
        var policy = NewPolicy(1, Old);
        for (uint id = 1; id <= 1000; id++)
        {
            policy.OnForeignKey(id, Stranger, Ms(id / 100.0));
        }
        Assert.Equal(NodePolicy.MaxForeignKeys, policy.ForeignKeys(Ms(10)).Count);
        Assert.Equal(1000u, policy.ForeignKeys(Ms(10))[0].KeyId);
    }

    [Fact]
    public void OnAdvertRejected_UnknownKeyBeforeAnyValidAdvert_YieldsAndNamesTheKeyIdsHeard()
    {
        var policy = NewPolicy(1, Old);
        policy.OnForeignKey(New, Stranger, Ms(10));
        policy.OnAdvertRejected(AdvertRejection.UnknownKey, default, Stranger, Ms(10));
        var conflict = policy.Conflict(Ms(20))!;
        Assert.Equal(ConflictKind.UnverifiedKey, conflict.Kind);
        Assert.Contains(AdvertKeys.Format(New), conflict.Description, StringComparison.Ordinal);
        Assert.Contains(AdvertKeys.Format(Old), conflict.Description, StringComparison.Ordinal);
        Assert.False(policy.GrantsSlice(Ms(125)));
    }

    [Fact]
    public void OnAdvertRejected_AuthenticationFailuresAfterAVerifiedPeer_NeverMakeTheNodeYield()
    {
        var policy = NewPolicy(1, Old);
        policy.OnAdvertAccepted(2, new AdvertEnvelope(2, Old, 0), Ms(5));
        for (var i = 0; i < 1000; i++)
        {
            policy.OnAdvertRejected(i % 2 == 0 ? AdvertRejection.BadHmac : AdvertRejection.UnknownKey, default, Stranger, Ms(10 + i));
            policy.OnForeignKey((uint)i, Stranger, Ms(10 + i));
        }
        Assert.Null(policy.Conflict(Ms(1010)));
        Assert.True(policy.GrantsSlice(Ms(1010)));
        Assert.True(policy.VerifiedAny);
    }
}
