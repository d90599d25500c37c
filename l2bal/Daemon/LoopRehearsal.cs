using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Health;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>
/// Runs the loop's code once on throwaway state before the loop starts, so that the loop never
/// stops to compile it. Why: l2bal compiles each method fully optimized on its first call
/// (TieredCompilation off, L2Bal.csproj), and the HMAC loads the crypto library on first use: a
/// newcomer's first steps with a peer took longer than the dead time at 8 ms adverts, and peers
/// declared it dead (docs/benchmarks.md#start-up). Nothing here touches the kernel, the network,
/// the daemon's state or its log.
/// </summary>
internal static class LoopRehearsal
{
    /// <summary>Rehearses start-up, a join, the claims, a cover, a return, health changes and a stall; returns the throwaway engine's events.</summary>
    public static IReadOnlyList<BalancerEvent> Run(BalancerOptions o, ReadOnlySpan<byte> key, UInt128 configDigest, FilterSettings settings)
    {
        var self = o.NodeId;
        var peer = o.NodeCount > 1 ? self % o.NodeCount + 1 : self;
        using var keys = new AdvertKeys(key);
        using var verifier = new AdvertVerifier(key, o.EffectiveClusterId, self, configDigest);
        var engine = new MembershipEngine(self, o.NodeCount, o.Buckets, o.AdvertInterval, o.DeadTime, o.SettleTime, TimeSpan.Zero);
        var other = new MembershipEngine(peer, o.NodeCount, o.Buckets, o.AdvertInterval, o.DeadTime, o.SettleTime, TimeSpan.Zero);
        var policy = new NodePolicy(self, 2, o.AdvertInterval, o.DeadTime, o.LeaseTime, o.Health.ToString(), o.Buckets);
        policy.UseKeys(keys.CurrentId, 0, AdvertCodec.HighestVersion);
        policy.StartListening(TimeSpan.Zero);
        var healthy = new HealthView(true, HealthProbeResult.Pass);
        var failing = new HealthView(false, new HealthProbeResult(HealthFailure.NothingListens, "rehearsal"));
        Span<byte> buffer = stackalloc byte[AdvertCodec.V2Length];
        var events = new List<BalancerEvent>();
        ulong sequence = 0;
        var t = TimeSpan.Zero;
        // Twelve dead times: both start and claim; the peer falls silent (a cover); it returns
        // (the hand-back); this node turns unhealthy, drains, comes back; then a stall.
        var rounds = 12 * Math.Max(1, (int)(o.DeadTime / o.AdvertInterval));
        for (var round = 0; round < rounds; round++, t += o.AdvertInterval)
        {
            var phase = round * 12 / rounds;
            _ = policy.Wake(o.AdvertInterval, carrier: true);
            policy.DrainRequested = phase == 8;
            // Waiting for the first probe, passing, failing (phase 7), drained (phase 8), back.
            if (policy.ChooseState(engine.LocalState, round == 0 || phase == 7 ? failing : healthy, t) is { } change)
            {
                engine.LocalState = change.State;
                events.Add(change);
            }
            var peerSilent = phase is 3 or 4;
            var before = engine.Held;
            var step = engine.Step(t);
            var theirs = other.Step(t);
            if (!peerSilent && peer != self)
            {
                // Both versions, as a node sends them while a version-1 peer lives.
                var envelope = new AdvertEnvelope((byte)(round % 2 + 1), keys.CurrentId, 0);
                var frame = buffer[..AdvertCodec.Write(other.BuildAdvert(o.EffectiveClusterId, configDigest, 1, ++sequence, t, theirs.Plan.Settled), envelope, keys, buffer)];
                if (verifier.TryAccept(frame, out var advert, out var heard, out _))
                {
                    policy.OnAdvertAccepted(advert.NodeId, heard, t);
                    engine.OnAdvert(advert, t);
                }
            }
            var choice = policy.ChooseAdvert([peer], t);
            _ = policy.ForeignKeys(t);
            var own = buffer[..AdvertCodec.Write(engine.BuildAdvert(o.EffectiveClusterId, configDigest, 2, ++sequence, t, step.Plan.Settled),
                new AdvertEnvelope(choice.Version, choice.SigningKeyId, choice.AlsoAccepts), keys, buffer)];
            if (peer != self && AdvertCodec.TryParse(own, o.EffectiveClusterId, keys, AdvertCodec.HighestVersion, out var ownAdvert, out _, out _))
            {
                other.OnAdvert(ownAdvert, t);
            }
            if (policy.Draining.Follow(before, step.Held, t))
            {
                _ = NftRuleset.Apply(settings, step.Held, policy.Draining.AcceptedWith(step.Held), policy.GrantsSlice(t), o.LeaseTime);
            }
            _ = NftRuleset.RenewLease(settings, o.LeaseTime);
            _ = engine.NextDeadline(t);
            events.AddRange(engine.TakeEvents());
            _ = other.TakeEvents();
            if (round == rounds - 2)
            {
                engine.DiscountSilence(o.LeaseTime, t);
                engine.Restart(t, ReleaseCause.Stall);
                _ = policy.Draining.Prune(t, new Dictionary<int, int>());
            }
        }
        return events;
    }
}
