using System.Net;
using L2Balance.Balancer.Daemon;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Protocol;
using L2Balance.Common.Migration;

namespace L2Balance.Balancer.Migration;

/// <summary>
/// l2bal's side of live migration (docs/design.md#migration-orchestration): the peers' advertised
/// addresses (loop thread), the channel key and accept address pushed to the local l2proxy (at start,
/// when the signing key changes, and every <see cref="PushInterval"/> so that a restarted l2proxy
/// learns them), and one run at a time of <c>drain --migrate</c> / <c>migrate</c>, off the loop.
/// </summary>
internal sealed class MigrationCoordinator(NodeAddresses self, IMigrationProxy proxy, BalancerLog log) : IDisposable
{
    /// <summary>How often the key and accept address are sent again.</summary>
    public static readonly TimeSpan PushInterval = TimeSpan.FromSeconds(10);

    /// <summary>How soon a failed push is tried again: l2proxy starts after l2bal (it binds the VIP l2bal puts on lo).</summary>
    public static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(1);

    private readonly Dictionary<int, NodeAddresses> _addresses = [];
    private readonly SemaphoreSlim _pushNow = new(0, 1);
    private readonly Lock _keyLock = new();
    private uint _epoch;
    private byte[]? _channelKey;
    private int _running;

    public MigrationCounters Counters { get; } = new();

    /// <summary>The peers' node addresses as last advertised (loop thread).</summary>
    public IReadOnlyDictionary<int, NodeAddresses> Addresses => _addresses;

    /// <summary>Notes a peer's advertised addresses; an advert without them means it does not migrate (any more).</summary>
    public void OnAdvert(in Advert advert)
    {
        if (advert.Addresses is { } addresses)
        {
            _addresses[advert.NodeId] = addresses;
        }
        else
        {
            _addresses.Remove(advert.NodeId);
        }
    }

    /// <summary>The key adverts are signed with now (its id the epoch): a change is pushed at once.</summary>
    public void SigningKey(uint keyId, byte[] clusterKey)
    {
        ArgumentNullException.ThrowIfNull(clusterKey);
        lock (_keyLock)
        {
            if (_channelKey is not null && _epoch == keyId)
            {
                return;
            }
            _epoch = keyId;
            _channelKey = MigrationChannelKey.Derive(clusterKey);
        }
        if (_pushNow.CurrentCount == 0)
        {
            _pushNow.Release();
        }
    }

    /// <summary>Pushes the key and the accept address until <paramref name="stop"/>.</summary>
    public async Task PushLoopAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var pushed = Push();
            try
            {
                await _pushNow.WaitAsync(pushed ? PushInterval : RetryInterval, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One push of the key and the accept addresses; false (counted, logged) when the proxy is not there.</summary>
    public bool Push()
    {
        uint epoch;
        byte[]? key;
        lock (_keyLock)
        {
            (epoch, key) = (_epoch, _channelKey);
        }
        if (key is null)
        {
            return false;
        }
        try
        {
            proxy.Key(epoch, key);
            foreach (var address in new[] { self.Ipv4, self.Ipv6 }.OfType<IPAddress>())
            {
                proxy.Accept(new IPEndPoint(address, self.Port));
            }
            return true;
        }
        catch (MigrationProxyException e)
        {
            Counters.ProxyError();
            log.MigrationProxyFailed(e.Message, Counters.ProxyErrors);
            return false;
        }
    }

    /// <summary>
    /// Starts a run: list the proxy's sessions, plan them against <paramref name="ownerOf"/> (a
    /// table taken on the loop) and the peers' addresses, move them. Null when one is running.
    /// </summary>
    public Task<MigrationSummary>? TryRun(string command, int selfId, Func<ProxySession, int> ownerOf, Action<IReadOnlyCollection<FlowTuple>, MovedFlowChange> movedOut,
        Func<System.Net.Sockets.AddressFamily, bool>? served = null)
    {
        if (Interlocked.Exchange(ref _running, 1) == 1)
        {
            return null;
        }
        var addresses = new Dictionary<int, NodeAddresses>(_addresses);
        // A thread of its own, not the pool's: a run blocks on l2proxy for its whole length, and this daemon's pool is small
        // (it idles in its loop); a status read or the drain's flow count would otherwise wait behind it.
        return DedicatedThread.Start("l2bal migration", () =>
        {
            // Started from the loop, it would inherit the loop's SCHED_RR.
            _ = Daemon.ThreadPriority.MakeCurrentThreadOrdinary();
            try
            {
                Push();
                IReadOnlyList<ProxySession> sessions;
                try
                {
                    sessions = proxy.List();
                }
                catch (MigrationProxyException e)
                {
                    Counters.ProxyError();
                    log.MigrationProxyFailed(e.Message, Counters.ProxyErrors);
                    throw;
                }
                var plan = MigrationPlanner.Plan(sessions, selfId, ownerOf, addresses, served);
                var summary = new MigrationRunner(proxy, movedOut, Counters).Run(plan);
                log.MigrationRan(command, summary.ToString());
                return summary;
            }
            finally
            {
                Volatile.Write(ref _running, 0);
            }
        });
    }

    public void Dispose() => _pushNow.Dispose();
}
