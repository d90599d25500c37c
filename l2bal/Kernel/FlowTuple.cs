using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Balancer.Kernel;

/// <summary>What happens to flows in the moved-flow sets (<see cref="NftRuleset.MovedOut"/>).</summary>
internal enum MovedFlowChange
{
    /// <summary>Before <c>move</c>: dropped here from now on.</summary>
    Moving,

    /// <summary>The session stayed: taken here again.</summary>
    Stayed,

    /// <summary>The move is confirmed: the next packet marks the flow in conntrack as moved away, for good.</summary>
    Moved,
}

/// <summary>
/// One direction of a flow as a packet to this node carries it: protocol, source, destination
/// (the VIP). The key of the moved-flow sets (docs/design.md#migration-filter).
/// </summary>
internal readonly record struct FlowTuple(ProtocolType Protocol, IPEndPoint Source, IPEndPoint Destination)
{
    /// <summary>The element in nft syntax: <c>tcp . 198.18.0.5 . 40000 . 198.18.0.1 . 1080</c>, or with IPv6 addresses for the ip6 table.</summary>
    public string NftElement()
    {
        if (Protocol is not (ProtocolType.Tcp or ProtocolType.Udp) || Source.AddressFamily != Destination.AddressFamily
            || Source.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
            || (Source.AddressFamily == AddressFamily.InterNetworkV6
                && (Source.Address.IsIPv4MappedToIPv6 || Destination.Address.IsIPv4MappedToIPv6 || Source.Address.ScopeId != 0 || Destination.Address.ScopeId != 0)))
        {
            throw new ArgumentException($"A moved flow is TCP or UDP over IPv4 or IPv6 (unscoped, not mapped), both ends of one family: {this}.");
        }
        string proto = Protocol == ProtocolType.Tcp ? "tcp" : "udp";
        return string.Create(CultureInfo.InvariantCulture, $"{proto} . {Source.Address} . {Source.Port} . {Destination.Address} . {Destination.Port}");
    }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Protocol} {Source} > {Destination}");
}
