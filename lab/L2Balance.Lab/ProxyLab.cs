using System.Net;

namespace L2Balance.Lab;

/// <summary>
/// The SOCKS lab: client — proxy — target on two point-to-point links. The proxy host does not
/// forward, so client traffic reaches the target only through a SOCKS proxy running on it.
/// <code>
///  client eth0 198.18.1.2/24       proxy eth0 198.18.1.1/24        proxy eth1 198.18.2.1/24        target eth0 198.18.2.2/24 (and .3)
///         fdc6:1200:1::2/64 ────────     fdc6:1200:1::1/64                fdc6:1200:2::1/64 ────────     fdc6:1200:2::2/64
/// </code>
/// IPv4 comes from the benchmarking range 198.18.0.0/15; IPv6 from the lab's ULA prefix fdc6:1200::/32.
/// </summary>
public sealed class ProxyLab : IAsyncDisposable, IDisposable
{
    /// <summary>The name the proxy host resolves to <see cref="TargetV4"/> and <see cref="TargetV6"/>.</summary>
    public const string TargetName = "target.lab";

    /// <summary>A name the proxy host resolves to [<see cref="TargetV4"/>, <see cref="TargetSecondV4"/>], in that order (issue 13: every resolved address passes the rules).</summary>
    public const string TwoAddressName = "two.lab";

    public static readonly IPAddress ClientV4 = IPAddress.Parse("198.18.1.2");
    public static readonly IPAddress ClientV6 = IPAddress.Parse("fdc6:1200:1::2");
    public static readonly IPAddress ProxyInsideV4 = IPAddress.Parse("198.18.1.1");
    public static readonly IPAddress ProxyInsideV6 = IPAddress.Parse("fdc6:1200:1::1");
    public static readonly IPAddress ProxyOutsideV4 = IPAddress.Parse("198.18.2.1");
    public static readonly IPAddress ProxyOutsideV6 = IPAddress.Parse("fdc6:1200:2::1");
    public static readonly IPAddress TargetV4 = IPAddress.Parse("198.18.2.2");
    public static readonly IPAddress TargetV6 = IPAddress.Parse("fdc6:1200:2::2");
    public static readonly IPAddress TargetSecondV4 = IPAddress.Parse("198.18.2.3");

    private ProxyLab(LabNetwork network, LabHost client, LabHost proxy, LabHost target)
    {
        Network = network;
        Client = client;
        Proxy = proxy;
        Target = target;
    }

    public LabNetwork Network { get; }

    public LabHost Client { get; }

    public LabHost Proxy { get; }

    public LabHost Target { get; }

    /// <summary>Builds the topology; on any failure the partial lab is torn down before rethrowing.</summary>
    public static Task<ProxyLab> CreateAsync() => Task.Run(() =>
    {
        var network = LabNetwork.Create();
        try
        {
            var client = network.AddHost("client");
            var proxy = network.AddHost("proxy");
            var target = network.AddHost("target");
            network.Link(client, "eth0", proxy, "eth0");
            network.Link(proxy, "eth1", target, "eth0");
            client.AddAddress("eth0", "198.18.1.2/24");
            client.AddAddress("eth0", "fdc6:1200:1::2/64");
            proxy.AddAddress("eth0", "198.18.1.1/24");
            proxy.AddAddress("eth0", "fdc6:1200:1::1/64");
            proxy.AddAddress("eth1", "198.18.2.1/24");
            proxy.AddAddress("eth1", "fdc6:1200:2::1/64");
            target.AddAddress("eth0", "198.18.2.2/24");
            target.AddAddress("eth0", "fdc6:1200:2::2/64");
            target.AddAddress("eth0", "198.18.2.3/24");
            client.AddRoute("default via 198.18.1.1");
            client.AddRoute("default via fdc6:1200:1::1");
            target.AddRoute("default via 198.18.2.1");
            target.AddRoute("default via fdc6:1200:2::1");

            // Explicitly off: traffic may only pass through the SOCKS proxy.
            proxy.SetSysctl("net.ipv4.ip_forward", "0");
            proxy.SetSysctl("net.ipv6.conf.all.forwarding", "0");
            proxy.SetHosts([(TargetName, TargetV4), (TargetName, TargetV6), (TwoAddressName, TargetV4), (TwoAddressName, TargetSecondV4)]);
            return new ProxyLab(network, client, proxy, target);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    });

    public ValueTask DisposeAsync() => Network.DisposeAsync();

    public void Dispose() => Network.Dispose();
}
