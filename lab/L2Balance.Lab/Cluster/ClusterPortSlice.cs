namespace L2Balance.Lab.Cluster;

/// <summary>The port slice each node's proxy gets for sockets bound to the VIP.</summary>
public static class ClusterPortSlice
{
    /// <summary>First port of the sliced range (Linux's default ip_local_port_range low end).</summary>
    public const int RangeLow = 32768;

    /// <summary>Last port of the sliced range (Linux's default ip_local_port_range high end).</summary>
    public const int RangeHigh = 60999;

    /// <summary>
    /// The inclusive slice of node <paramref name="nodeId"/> (1..N) among <paramref name="nodeCount"/>:
    /// 32768..60999 cut into N consecutive slices; the first (28232 mod N) nodes get one more port.
    /// This mirrors l2bal/Cluster/PortSlice.cs (the lab does not reference l2bal, so that the lab
    /// can drive any build of it); the lab test compares it with <c>l2bal slice</c> when l2bal is built.
    /// </summary>
    public static (int Low, int High) For(int nodeId, int nodeCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeId, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nodeId, nodeCount);
        int total = RangeHigh - RangeLow + 1;
        int size = total / nodeCount, extra = total % nodeCount;
        int index = nodeId - 1;
        int low = RangeLow + (index * size) + Math.Min(index, extra);
        return (low, low + size + (index < extra ? 1 : 0) - 1);
    }

    /// <summary>The node (1..N) whose slice holds <paramref name="port"/>, or null outside the range.</summary>
    public static int? NodeOfPort(int port, int nodeCount)
    {
        for (var k = 1; k <= nodeCount; k++)
        {
            var (low, high) = For(k, nodeCount);
            if (port >= low && port <= high)
            {
                return k;
            }
        }

        return null;
    }
}
