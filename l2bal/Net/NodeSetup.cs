using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Balancer.Net;

/// <summary>One sysctl NodeSetup changed: its file, the value found and the value written.</summary>
internal sealed record SysctlChange(string Path, string OldValue, string NewValue);

/// <summary>
/// What l2bal changes on the node outside its own sockets and tables (docs/design.md#node-setup),
/// each recorded so that <see cref="Undo"/> restores it on a clean stop:
/// <list type="bullet">
/// <item>the VIP as a /32 on <c>lo</c>, through rtnetlink (no <c>ip</c> process), so local
/// services can bind it while no interface on the segment carries it; an IPv6 VIP as a /128 there
/// too, flagged nodad (the kernel answers neighbour solicitations only for the receiving interface's
/// addresses, docs/design.md#ndp);</item>
/// <item><c>arp_ignore=1</c> and <c>arp_announce=2</c> on the segment interface and
/// <c>all/arp_announce=2</c>: the kernel then never answers who-has for the VIP nor uses it as an
/// ARP source, whatever happens to l2bal (only l2bal's responder answers, with the cluster MAC);</item>
/// <item>multicast mode only: <c>drop_unicast_in_l2_multicast=1</c>, so that without l2bal's
/// pkttype fix the stack takes no VIP traffic (docs/design.md#receiving-cluster-mac-frames); with an
/// IPv6 VIP its IPv6 twin too (<c>net/ipv6/conf/IF/drop_unicast_in_l2_multicast</c>, ip6_rcv_core).</item>
/// <item>with an IPv6 VIP alone the ARP sysctls are not written: there is no IPv4 VIP to keep the kernel from answering for.</item>
/// </list>
/// Everything runs in the network namespace of the calling thread (netlink socket and
/// /proc/sys/net are both per namespace).
/// </summary>
internal sealed class NodeSetup
{
    /// <summary>Where the VIP lives: this kernel has no dummy interface (docs/design.md#arp-suppression).</summary>
    public const string LoopbackInterface = "lo";

    /// <summary>The VIP is a host address.</summary>
    public const byte VipPrefixLength = 32;

    /// <summary>The IPv6 VIP is a host address.</summary>
    public const byte Vip6PrefixLength = 128;

    private readonly List<SysctlChange> _sysctls;
    private bool _vipAdded;
    private bool _vip6Added;

    private NodeSetup(InterfaceInfo segment, int loopbackIndex, IPAddress? vip, List<SysctlChange> sysctls, bool vipWasPresent)
    {
        Segment = segment;
        LoopbackIndex = loopbackIndex;
        Vip = vip;
        _sysctls = sysctls;
        VipWasPresent = vipWasPresent;
        _vipAdded = vip is not null;
    }

    /// <summary>The segment interface: index and own MAC.</summary>
    public InterfaceInfo Segment { get; }

    /// <summary>Index of <c>lo</c>.</summary>
    public int LoopbackIndex { get; }

    /// <summary>The IPv4 VIP; null with an IPv6 VIP alone.</summary>
    public IPAddress? Vip { get; }

    /// <summary>The IPv6 VIP on lo; null when there is none.</summary>
    public IPAddress? Vip6 { get; private set; }

    /// <summary>
    /// The VIP was already on lo at start: a leftover of a run that did not stop cleanly (or an
    /// operator's doing). It is adopted and removed by <see cref="Undo"/> like one added now.
    /// </summary>
    public bool VipWasPresent { get; }

    /// <summary>The sysctls written, in order, with the values they had.</summary>
    public IReadOnlyList<SysctlChange> SysctlChanges => _sysctls;

    /// <summary>
    /// Applies the node configuration. On failure, whatever was already changed is undone
    /// before the exception propagates.
    /// </summary>
    /// <param name="interfaceName">The segment interface, e.g. eth0.</param>
    /// <param name="vip">The shared IPv4 address; null with an IPv6 VIP alone.</param>
    /// <param name="multicastMode">True when the cluster MAC is a group address.</param>
    /// <param name="procSysRoot">/proc/sys, replaceable in tests.</param>
    /// <param name="vip6">The shared IPv6 address, if any: added to lo as well (and adopted if already there).</param>
    /// <exception cref="ArgumentException">The VIP is not IPv4, or neither VIP is given.</exception>
    /// <exception cref="InterfaceNotFoundException">The interface does not exist in this namespace.</exception>
    /// <exception cref="IOException">A sysctl or netlink request failed; the message names it.</exception>
    public static NodeSetup Apply(string interfaceName, IPAddress? vip, bool multicastMode, string procSysRoot = "/proc/sys", IPAddress? vip6 = null)
    {
        if (vip is null ? vip6 is null : vip.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException($"The VIP must be an IPv4 address, or absent beside an IPv6 VIP, not {vip}.", nameof(vip));
        }

        var segment = InterfaceInfo.Lookup(interfaceName);
        int loopback = InterfaceInfo.LookupIndex(LoopbackInterface);
        var changes = new List<SysctlChange>();
        try
        {
            foreach (var (path, value) in DesiredSysctls(procSysRoot, interfaceName, multicastMode, ipv4: vip is not null, ipv6: vip6 is not null))
            {
                changes.Add(WriteSysctl(path, value));
            }

            using var netlink = RtNetlinkSocket.Open();
            bool added = vip is not null && netlink.AddAddress(loopback, vip, VipPrefixLength);
            var setup = new NodeSetup(segment, loopback, vip, changes, vipWasPresent: vip is not null && !added);
            if (vip6 is not null)
            {
                try
                {
                    netlink.AddAddress(loopback, vip6, Vip6PrefixLength);
                    (setup.Vip6, setup._vip6Added) = (vip6, true);
                }
                catch when (added)
                {
                    netlink.DeleteAddress(loopback, vip!, VipPrefixLength);
                    throw;
                }
            }
            return setup;
        }
        catch
        {
            RestoreSysctls(changes, errors: null);
            throw;
        }
    }

    /// <summary>The sysctl files and values the design asks for: <paramref name="ipv4"/>'s with an IPv4 VIP, <paramref name="ipv6"/>'s with an IPv6 one.</summary>
    public static IReadOnlyList<(string Path, string Value)> DesiredSysctls(string procSysRoot, string interfaceName, bool multicastMode, bool ipv4 = true, bool ipv6 = false)
    {
        PacketStructs.ValidateInterfaceName(interfaceName);
        var list = new List<(string, string)>();
        if (ipv4)
        {
            list.Add((ConfPath(procSysRoot, interfaceName, "arp_ignore"), "1"));
            list.Add((ConfPath(procSysRoot, interfaceName, "arp_announce"), "2"));
            list.Add((ConfPath(procSysRoot, "all", "arp_announce"), "2"));
            if (multicastMode)
            {
                list.Add((ConfPath(procSysRoot, interfaceName, "drop_unicast_in_l2_multicast"), "1"));
            }
        }
        if (ipv6 && multicastMode)
        {
            list.Add((Path.Combine(procSysRoot, "net", "ipv6", "conf", interfaceName, "drop_unicast_in_l2_multicast"), "1"));
        }

        return list;
    }

    /// <summary>
    /// Removes the VIP from lo and restores every sysctl to the value it had. Idempotent; tries
    /// every step and reports all failures together.
    /// </summary>
    public void Undo()
    {
        var errors = new List<Exception>();
        if (_vipAdded)
        {
            try
            {
                using var netlink = RtNetlinkSocket.Open();
                netlink.DeleteAddress(LoopbackIndex, Vip!, VipPrefixLength);
                _vipAdded = false;
            }
            catch (IOException ex)
            {
                errors.Add(ex);
            }
        }
        if (_vip6Added)
        {
            try
            {
                using var netlink = RtNetlinkSocket.Open();
                netlink.DeleteAddress(LoopbackIndex, Vip6!, Vip6PrefixLength);
                _vip6Added = false;
            }
            catch (IOException ex)
            {
                errors.Add(ex);
            }
        }

        RestoreSysctls(_sysctls, errors);
        if (errors.Count > 0)
        {
            throw new AggregateException("Undoing the node setup failed in part.", errors);
        }
    }

    private static string ConfPath(string procSysRoot, string interfaceName, string key) =>
        Path.Combine(procSysRoot, "net", "ipv4", "conf", interfaceName, key);

    private static SysctlChange WriteSysctl(string path, string value)
    {
        string old;
        try
        {
            old = File.ReadAllText(path).Trim();
            if (old != value)
            {
                File.WriteAllText(path, value + "\n");
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"sysctl {path}={value}: {ex.Message}", ex);
        }

        return new SysctlChange(path, old, value);
    }

    private static void RestoreSysctls(List<SysctlChange> changes, List<Exception>? errors)
    {
        for (int i = changes.Count - 1; i >= 0; i--)
        {
            var change = changes[i];
            try
            {
                if (change.OldValue != change.NewValue)
                {
                    File.WriteAllText(change.Path, change.OldValue + "\n");
                }

                changes.RemoveAt(i);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                errors?.Add(new IOException(string.Create(CultureInfo.InvariantCulture, $"sysctl {change.Path}={change.OldValue} (restore): {ex.Message}"), ex));
            }
        }
    }
}
