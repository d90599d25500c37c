namespace L2Balance.Balancer.Cluster;

/// <summary>
/// Per-node slices of the ephemeral port range for sockets bound to the VIP (docs/design.md#port-slices).
/// </summary>
/// <remarks>
/// Rule: the range 32768..60999 (Linux's default net.ipv4.ip_local_port_range, 28232 ports) is cut
/// into N consecutive slices in node-id order; each gets floor(28232 / N) ports and the first
/// (28232 mod N) nodes get one more. Slices are disjoint and cover the range exactly. Service
/// ports (1080, 53, ...) lie below 32768, outside every slice. A pure function of (id, N), so
/// every node and the proxy's configuration agree.
/// </remarks>
internal static class PortSlice
{
    /// <summary>First port of the sliced range (ip_local_port_range default low end).</summary>
    public const int RangeLow = 32768;

    /// <summary>Last port of the sliced range (ip_local_port_range default high end).</summary>
    public const int RangeHigh = 60999;

    /// <summary>The inclusive slice of node <paramref name="nodeId"/> (1..N) among <paramref name="nodeCount"/> nodes.</summary>
    public static (int Low, int High) For(int nodeId, int nodeCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nodeCount, MembershipView.MaxNodes);
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeId, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nodeId, nodeCount);

        int total = RangeHigh - RangeLow + 1;
        int size = total / nodeCount, extra = total % nodeCount;
        int index = nodeId - 1;
        int low = RangeLow + (index * size) + Math.Min(index, extra);
        int length = size + (index < extra ? 1 : 0);
        return (low, low + length - 1);
    }

    /// <summary>
    /// What <c>l2bal slice</c> prints: node <paramref name="nodeId"/>'s slice as <c>LO-HI</c> (the value of
    /// <c>l2proxy --port-range</c>), or without it every node's, one <c>node K: LO-HI</c> line each.
    /// </summary>
    public static string Describe(int? nodeId, int nodeCount)
    {
        if (nodeId is { } id)
        {
            var (low, high) = For(id, nodeCount);
            return FormattableString.Invariant($"{low}-{high}\n");
        }
        var text = new System.Text.StringBuilder();
        for (var k = 1; k <= nodeCount; k++)
        {
            var (low, high) = For(k, nodeCount);
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"node {k}: {low}-{high}\n");
        }
        return text.ToString();
    }
}
