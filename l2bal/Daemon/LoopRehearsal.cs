using System.Reflection;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>
/// Runs the loop's code once on throwaway state before the loop starts, so that the loop never
/// stops to compile it. Why: l2bal compiles each method fully optimized on its first call
/// (TieredCompilation off, L2Bal.csproj), and the HMAC loads the crypto library on first use.
/// Measured in the lab at 8 ms adverts: the step that first verified a peer's advert and first
/// planned a table with a peer took 21–36 ms, longer than the 24 ms dead time, so peers declared
/// the newcomer dead right after its first advert, and the first cover paid for compiling the
/// cover path. Nothing here touches the kernel, the network, the daemon's state or its log.
/// </summary>
internal static class LoopRehearsal
{
    /// <summary>Rehearses start-up, a join, the claims, a cover, a return, health changes and a stall; returns the throwaway engine's events.</summary>
    public static IReadOnlyList<MembershipEvent> Run(BalancerOptions o, ReadOnlySpan<byte> key, UInt128 configDigest, FilterSettings settings)
    {
        CompileDaemon();
        var self = o.NodeId;
        var peer = o.NodeCount > 1 ? self % o.NodeCount + 1 : self;
        using var signer = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key);
        using var verifier = new AdvertVerifier(key, o.EffectiveClusterId, self, configDigest);
        var engine = new MembershipEngine(self, o.NodeCount, o.Buckets, o.AdvertInterval, o.DeadTime, o.SettleTime, TimeSpan.Zero);
        var other = new MembershipEngine(peer, o.NodeCount, o.Buckets, o.AdvertInterval, o.DeadTime, o.SettleTime, TimeSpan.Zero);
        Span<byte> frame = stackalloc byte[AdvertCodec.Length];
        var draining = new BucketSet(o.Buckets);
        var events = new List<MembershipEvent>();
        ulong sequence = 0;
        var t = TimeSpan.Zero;
        // Twelve dead times: both start and claim; the peer falls silent (a cover); it returns
        // (the hand-back); this node turns unhealthy, drains, comes back; then a stall.
        var rounds = 12 * Math.Max(1, (int)(o.DeadTime / o.AdvertInterval));
        for (var round = 0; round < rounds; round++, t += o.AdvertInterval)
        {
            var phase = round * 12 / rounds;
            engine.LocalState = phase switch { 7 => AdvertState.Unhealthy, 8 => AdvertState.Draining, _ => AdvertState.Active };
            var peerSilent = phase is 3 or 4;
            var before = engine.Held;
            var step = engine.Step(t);
            var theirs = other.Step(t);
            if (!peerSilent && peer != self)
            {
                AdvertCodec.Write(other.BuildAdvert(o.EffectiveClusterId, configDigest, 1, ++sequence, t, theirs.Plan.Settled), signer, frame);
                if (verifier.TryAccept(frame, out var advert, out _))
                {
                    engine.OnAdvert(advert, t);
                }
            }
            AdvertCodec.Write(engine.BuildAdvert(o.EffectiveClusterId, configDigest, 2, ++sequence, t, step.Plan.Settled), signer, frame);
            if (peer != self && AdvertCodec.TryParse(frame, o.EffectiveClusterId, signer, out var own, out _))
            {
                other.OnAdvert(own, t);
            }
            if (!step.Held.Equals(before))
            {
                foreach (var bucket in before.Buckets())
                {
                    if (!step.Held.Contains(bucket))
                    {
                        draining.Add(bucket);
                    }
                }
                var accepted = step.Held.Clone();
                foreach (var bucket in draining.Buckets())
                {
                    accepted.Add(bucket);
                }
                _ = NftRuleset.Apply(settings, step.Held, accepted, ownSlice: true, o.LeaseTime);
            }
            _ = NftRuleset.RenewLease(settings, o.LeaseTime);
            _ = engine.NextDeadline(t);
            events.AddRange(engine.TakeEvents());
            _ = other.TakeEvents();
            if (round == rounds - 2)
            {
                engine.DiscountSilence(o.LeaseTime, t);
                engine.Restart(t);
            }
        }
        return events;
    }

    /// <summary>
    /// Compiles the daemon's own methods (the loop's body and its branches, which the rehearsal
    /// cannot run without I/O). Their callees in the engine and codecs the rehearsal runs.
    /// </summary>
    private static void CompileDaemon()
    {
        const BindingFlags all = BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
        foreach (var method in typeof(BalancerDaemon).GetMethods(all))
        {
            if (!method.IsAbstract && !method.ContainsGenericParameters && method.GetMethodBody() is not null)
            {
                RuntimeHelpers.PrepareMethod(method.MethodHandle);
            }
        }
    }
}
