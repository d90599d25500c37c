using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace L2Balance.Lab.Cluster;

/// <summary>
/// A sockaddr_ll (packet(7)) as a .NET <see cref="EndPoint"/>: family, protocol (network order),
/// interface index; what the lab's raw senders on the segment bind to.
/// </summary>
internal sealed partial class LinkLayerEndPoint(ushort protocol, int interfaceIndex) : EndPoint
{
    public override AddressFamily AddressFamily => AddressFamily.Packet;

    public override SocketAddress Serialize()
    {
        var address = new SocketAddress(AddressFamily.Packet, 20);
        var bytes = address.Buffer.Span;
        bytes.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, 17); // AF_PACKET (.NET numbers AddressFamily.Packet otherwise)
        BinaryPrimitives.WriteUInt16BigEndian(bytes[2..], protocol);
        BinaryPrimitives.WriteInt32LittleEndian(bytes[4..], interfaceIndex);
        return address;
    }

    public override EndPoint Create(SocketAddress socketAddress) => this;

    /// <summary>The interface index in a line of <c>ip -o link show</c>.</summary>
    public static int IndexIn(string ipLinkLine) => int.Parse(IfIndex().Match(ipLinkLine).Groups[1].Value, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^(\d+):")]
    private static partial Regex IfIndex();
}
