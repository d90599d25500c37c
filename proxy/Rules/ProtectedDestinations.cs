using System.Collections.Frozen;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Proxy.Rules;

/// <summary>
/// Destinations l2proxy never relays to unless a socks rule names them (docs/sockd-conf.md#protected-destinations):
/// a proxy must never become a way into the node's own services (issue 13).
/// </summary>
public enum DestinationClass
{
    /// <summary>Any other address: the rules alone decide.</summary>
    Ordinary,
    /// <summary>127.0.0.0/8 and ::1 (also as ::ffff:127.x.y.z).</summary>
    Loopback,
    /// <summary>0.0.0.0/8 and :: : "this host" to the kernel, so a way to loopback.</summary>
    ThisNetwork,
    /// <summary>169.254.0.0/16 and fe80::/10 (metadata services, neighbours' management).</summary>
    LinkLocal,
    /// <summary>224.0.0.0/4 and ff00::/8.</summary>
    Multicast,
    /// <summary>255.255.255.255 and the directed broadcast address of each local IPv4 subnet.</summary>
    Broadcast,
    /// <summary>An address of this node, the VIP included, as the kernel has them now.</summary>
    NodeAddress,
}

/// <summary>
/// This node's addresses at one moment (an immutable snapshot, replaced whole when they change):
/// the unicast addresses of every interface, and the directed broadcast address of each IPv4 subnet.
/// </summary>
public sealed class LocalAddressSet
{
    private readonly FrozenSet<IPAddress> _addresses;
    private readonly FrozenSet<IPAddress> _broadcasts;

    /// <param name="addresses">Every address with its prefix length, as the interfaces carry them.</param>
    public LocalAddressSet(IEnumerable<(IPAddress Address, int PrefixLength)> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        var list = addresses.Select(a => (Address: Normalize(a.Address), a.PrefixLength)).ToList();
        _addresses = list.Select(a => a.Address).ToFrozenSet();
        // A /31 or /32 has no broadcast address (RFC 3021).
        _broadcasts = list.Where(a => a.Address.AddressFamily == AddressFamily.InterNetwork && a.PrefixLength is >= 0 and < 31)
            .Select(a => DirectedBroadcast(a.Address, a.PrefixLength)).ToFrozenSet();
    }

    /// <summary>No address known: only the fixed classes apply.</summary>
    public static LocalAddressSet Empty { get; } = new([]);

    /// <summary>How many addresses the node has (for the log line that reports a change).</summary>
    public int Count => _addresses.Count;

    public bool IsNodeAddress(IPAddress address) => _addresses.Contains(address);

    public bool IsDirectedBroadcast(IPAddress address) => _broadcasts.Contains(address);

    private static IPAddress DirectedBroadcast(IPAddress address, int prefixLength)
    {
        Span<byte> bytes = stackalloc byte[4];
        address.TryWriteBytes(bytes, out _);
        uint host = prefixLength == 0 ? uint.MaxValue : uint.MaxValue >> prefixLength;
        uint value = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes) | host;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return new IPAddress(bytes);
    }

    internal static IPAddress Normalize(IPAddress address) =>
        address.IsIPv4MappedToIPv6 ? address.MapToIPv4()
        : address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0 ? new IPAddress(address.GetAddressBytes()) : address;
}

/// <summary>Which <see cref="DestinationClass"/> an address is in, and whether a rule's <c>to:</c> names it. Pure functions.</summary>
public static class ProtectedDestinations
{
    private static readonly IPAddress Ipv4Broadcast = IPAddress.Broadcast;

    /// <summary>The class of <paramref name="address"/>; IPv4-mapped IPv6 is classified as the IPv4 address it carries.</summary>
    public static DestinationClass Classify(IPAddress address, LocalAddressSet local)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(local);
        address = LocalAddressSet.Normalize(address);
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> b = stackalloc byte[4];
            address.TryWriteBytes(b, out _);
            return b[0] switch
            {
                127 => DestinationClass.Loopback,
                0 => DestinationClass.ThisNetwork,
                169 when b[1] == 254 => DestinationClass.LinkLocal,
                >= 224 and < 240 => DestinationClass.Multicast,
                _ when address.Equals(Ipv4Broadcast) || local.IsDirectedBroadcast(address) => DestinationClass.Broadcast,
                _ => local.IsNodeAddress(address) ? DestinationClass.NodeAddress : DestinationClass.Ordinary,
            };
        }

        if (address.Equals(IPAddress.IPv6Loopback))
        {
            return DestinationClass.Loopback;
        }

        if (address.Equals(IPAddress.IPv6Any))
        {
            return DestinationClass.ThisNetwork;
        }

        return address.IsIPv6LinkLocal ? DestinationClass.LinkLocal
            : address.IsIPv6Multicast ? DestinationClass.Multicast
            : local.IsNodeAddress(address) ? DestinationClass.NodeAddress
            : DestinationClass.Ordinary;
    }

    /// <summary>
    /// Whether a <c>to:</c> matcher names <paramref name="address"/> of class <paramref name="kind"/>
    /// explicitly: a network that contains it and lies inside the class (127.0.0.0/8 or narrower for
    /// loopback, the address itself for a node address or a broadcast). <c>0/0</c>, a wider network
    /// (<c>198.18.0.0/15</c> holding the VIP) or a domain (its name may resolve anywhere) does not.
    /// </summary>
    public static bool Names(AddressMatcher to, IPAddress address, DestinationClass kind)
    {
        ArgumentNullException.ThrowIfNull(to);
        ArgumentNullException.ThrowIfNull(address);
        if (to.Network is not { } network)
        {
            return false;
        }

        address = LocalAddressSet.Normalize(address);
        int prefix = to.PrefixLength;
        if (network.IsIPv4MappedToIPv6)
        {
            prefix -= 96;
        }

        return RuleEvaluator.InNetwork(address, network, to.PrefixLength) && prefix >= NamingPrefix(kind, address.AddressFamily);
    }

    /// <summary>The widest prefix that still lies inside the class: the class's own network, or one host.</summary>
    private static int NamingPrefix(DestinationClass kind, AddressFamily family)
    {
        bool v4 = family == AddressFamily.InterNetwork;
        return kind switch
        {
            DestinationClass.Loopback or DestinationClass.ThisNetwork => v4 ? 8 : 128,
            DestinationClass.LinkLocal => v4 ? 16 : 10,
            DestinationClass.Multicast => v4 ? 4 : 8,
            _ => v4 ? 32 : 128,
        };
    }
}
