using System.Globalization;
using System.Net;

namespace L2Balance.Balancer.Kernel;

/// <summary>
/// Counts this node's flows per bucket from the procfs conntrack table (one line per flow,
/// per network namespace; present on this kernel, checked in the lab). Pure parser plus one read.
/// </summary>
/// <remarks>
/// A line looks like
/// <c>ipv4 2 tcp 6 431999 ESTABLISHED src=198.18.0.101 dst=198.18.0.10 sport=44369 dport=8080 src=… [ASSURED] mark=65870 zone=0 use=2</c>.
/// (<c>ipv6 10 …</c> lines, the IPv6 VIP's flows, print addresses uncompressed.)
/// A flow counts when its original destination is a VIP and its mark is
/// <c>0x10000 | bucket</c> (set by the accept-new rule). TCP flows count while ESTABLISHED or in
/// their handshake, and past that (a FIN seen) only while a process of this node still holds the
/// connection (<c>liveConnection</c>, from the sockets): a client that half-closes (its request,
/// then its FIN) still receives the answer, and conntrack's state says nothing reliable about it (a
/// retransmitted FIN, in the direction that already closed, takes the entry from FIN_WAIT to
/// LAST_ACK and then TIME_WAIT while the answer flows; seen in the lab), while a connection closed
/// here needs nothing more however long conntrack keeps its entry. UDP and ICMP flows have no
/// state and count until conntrack expires them.
/// </remarks>
internal static class ConntrackTable
{
    /// <summary>The calling thread's namespace's table (/proc/net follows the process, not the thread).</summary>
    public const string ProcPath = "/proc/thread-self/net/nf_conntrack";

    /// <summary>
    /// Counts flows per bucket in the text of <see cref="ProcPath"/>; UDP flows to
    /// <paramref name="statelessUdpPorts"/> (affinity none) are not counted, as they are never drained.
    /// <paramref name="liveConnection"/> (client address, client port, VIP port) says whether this node still holds a TCP
    /// connection in which conntrack saw a FIN; without it such a flow does not count.
    /// </summary>
    public static Dictionary<int, int> CountByBucket(TextReader table, IPAddress? vip, int buckets, IReadOnlyCollection<int>? statelessUdpPorts = null, IPAddress? vip6 = null,
        Func<IPAddress, int, int, bool>? liveConnection = null)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (vip is null && vip6 is null)
        {
            throw new ArgumentNullException(nameof(vip), "No VIP of either family.");
        }
        string? vipDst = vip is null ? null : "dst=" + vip;
        var counts = new Dictionary<int, int>();
        while (table.ReadLine() is { } line)
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 6 || !((fields[0] == "ipv4" && vipDst is not null) || (fields[0] == "ipv6" && vip6 is not null)))
            {
                continue;
            }

            string protocol = fields[2];
            bool closing = protocol == "tcp" && fields[5] is not ("ESTABLISHED" or "SYN_SENT" or "SYN_RECV" or "SYN_SENT2");
            if (closing && liveConnection is null)
            {
                continue;
            }

            // The first dst= is the original direction's destination.
            string? dst = fields.FirstOrDefault(f => f.StartsWith("dst=", StringComparison.Ordinal));
            string? mark = fields.FirstOrDefault(f => f.StartsWith("mark=", StringComparison.Ordinal));
            // The kernel prints IPv6 addresses uncompressed (%pI6): compare them as addresses.
            bool toVip = fields[0] == "ipv4" ? dst == vipDst
                : dst is not null && IPAddress.TryParse(dst.AsSpan(4), out var address) && address.Equals(vip6);
            if (!toVip || mark is null
                || !uint.TryParse(mark.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out uint value)
                || (value & ~0xFFFFu) != NftRuleset.FlowMarkBase)
            {
                continue;
            }

            if (protocol == "udp" && statelessUdpPorts is { Count: > 0 } && Port(fields, "dport=") is { } port && statelessUdpPorts.Contains(port))
            {
                continue;
            }

            if (closing && !(Endpoint(fields, "src=", "sport=") is { } client && Port(fields, "dport=") is { } vipPort
                && liveConnection!(client.Address, client.Port, vipPort)))
            {
                continue;
            }

            int bucket = (int)(value & 0xFFFF);
            if (bucket < buckets)
            {
                counts[bucket] = counts.GetValueOrDefault(bucket) + 1;
            }
        }

        return counts;
    }

    /// <summary>The original direction's source address and port (the first src= and sport=), or null.</summary>
    private static (IPAddress Address, int Port)? Endpoint(string[] fields, string address, string port) =>
        fields.FirstOrDefault(f => f.StartsWith(address, StringComparison.Ordinal)) is { } a && IPAddress.TryParse(a.AsSpan(address.Length), out var parsed)
            && Port(fields, port) is { } p ? (parsed, p) : null;

    /// <summary>The first field <paramref name="name"/>'s port, or null.</summary>
    private static int? Port(string[] fields, string name) =>
        fields.FirstOrDefault(f => f.StartsWith(name, StringComparison.Ordinal)) is { } f
            && int.TryParse(f.AsSpan(name.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var port) ? port : null;

    /// <summary>Reads <see cref="ProcPath"/> of the calling thread's namespace.</summary>
    /// <exception cref="KernelFilterException">The kernel has no procfs conntrack table.</exception>
    public static Dictionary<int, int> Read(IPAddress? vip, int buckets, IReadOnlyCollection<int>? statelessUdpPorts = null, IPAddress? vip6 = null,
        Func<IPAddress, int, int, bool>? liveConnection = null)
    {
        try
        {
            using var reader = new StreamReader(ProcPath);
            return CountByBucket(reader, vip, buckets, statelessUdpPorts, vip6, liveConnection);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new KernelFilterException($"{ProcPath}: absent (kernel without CONFIG_NF_CONNTRACK_PROCFS)", ex);
        }
    }
}
