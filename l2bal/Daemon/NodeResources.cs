using System.Net.Sockets;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Control;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>
/// What a running node has put in place, in the order it is put in place: the VIP on lo and the
/// ARP sysctls, the kernel filter, the ARP responder, the advert channel, the control socket, the
/// metrics endpoint. Disposing takes everything down in reverse, whatever subset was opened: the
/// one way out of the daemon, after a failed start, a clean stop or an error.
/// </summary>
internal sealed class NodeResources : IAsyncDisposable
{
    private readonly IKernelFilter _filter;
    private readonly BalancerLog _log;
    private NodeSetup? _node;

    private NodeResources(IKernelFilter filter, BalancerLog log)
    {
        _filter = filter;
        _log = log;
    }

    public ArpResponder Arp { get; private set; } = null!;

    public AdvertChannel Adverts { get; private set; } = null!;

    public ControlServer Control { get; private set; } = null!;

    public MetricsEndpoint? Metrics { get; private set; }

    public Carrier Carrier { get; private set; } = null!;

    /// <summary>
    /// Puts everything in place, or, when one piece fails, takes down what was placed and throws
    /// the failure (an <see cref="IOException"/>, <see cref="SocketException"/>,
    /// <see cref="KernelFilterException"/>, …) for the caller to report.
    /// </summary>
    public static async Task<NodeResources> OpenAsync(BalancerOptions o, FilterSettings settings, IKernelFilter filter, BalancerLog log, BalancerCounters counters, Func<Task<string>> renderMetrics)
    {
        var r = new NodeResources(filter, log);
        try
        {
            r._node = NodeSetup.Apply(o.Interface, o.Vip, o.MacMode == MacMode.Multicast, vip6: o.Vip6);
            // Read on any wake at least three quarters of an interval after the last read, so at
            // least once an interval with the adverts.
            r.Carrier = new Carrier(o.Interface, o.AdvertInterval * 3 / 4);
            filter.Install(settings);
            r.Arp = ArpResponder.Open(o.Interface, o.Vip, settings.ClusterMac, log, o.Vip6);
            r.Adverts = AdvertChannel.Open(o.Interface);
            r.Control = new ControlServer(o.ControlPath, o.ControlGroup, counters, log);
            if (o.Metrics is { } endPoint)
            {
                r.Metrics = new MetricsEndpoint(endPoint, renderMetrics);
            }
            return r;
        }
        catch
        {
            await r.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Whether <paramref name="e"/> is a failure to put a piece in place (reported, not a crash).</summary>
    public static bool IsStartFailure(Exception e) =>
        e is IOException or InvalidOperationException or KernelFilterException or SocketException or UnauthorizedAccessException;

    public async ValueTask DisposeAsync()
    {
        try
        {
            _filter.Remove(); // nothing to do when it was never installed
        }
        catch (KernelFilterException e)
        {
            _log.RulesRemoveFailed(e.Message);
        }
        foreach (var piece in (IAsyncDisposable?[])[Arp, Adverts, Control, Metrics])
        {
            if (piece is not null)
            {
                await piece.DisposeAsync().ConfigureAwait(false);
            }
        }
        _node?.Undo();
        Carrier?.Dispose();
    }
}
