namespace L2Balance.Proxy.Migration;

/// <summary>A TCP segment of an inbound flow that the new node captured while the flow moved: its sequence number, payload, and whether it carried FIN or RST.</summary>
public readonly record struct CapturedSegment(uint Seq, ReadOnlyMemory<byte> Payload, bool FinOrRst);

/// <summary>
/// Which captured bytes a restored leg may take into its receive queue (docs/design.md#the-pause): the
/// payload contiguous from the leg's rcv_nxt, in sequence arithmetic mod 2^32, up to the first gap and
/// never at or past a FIN or RST. Bytes before rcv_nxt are what the old socket had: never taken again,
/// so every byte reaches the relay once. Pure.
/// </summary>
public static class ReceiveAppend
{
    /// <summary>The bytes to append after <paramref name="rcvNxt"/>, at most <paramref name="maxBytes"/>.</summary>
    public static byte[] Contiguous(uint rcvNxt, IReadOnlyList<CapturedSegment> segments, int maxBytes)
    {
        ArgumentNullException.ThrowIfNull(segments);
        // The stream ends (or aborts) at the first FIN or RST at or after rcv_nxt: nothing from there on.
        var limit = (long)maxBytes;
        foreach (var s in segments)
        {
            var at = (int)(s.Seq - rcvNxt);
            if (s.FinOrRst && at >= 0)
            {
                limit = Math.Min(limit, at);
            }
        }

        var output = new List<byte>();
        var next = rcvNxt;
        while (output.Count < limit)
        {
            // The segment that covers `next` and reaches furthest past it.
            ReadOnlyMemory<byte> best = default;
            foreach (var s in segments)
            {
                var offset = next - s.Seq;
                if (!s.FinOrRst && offset < (uint)s.Payload.Length && s.Payload.Length - (int)offset > best.Length)
                {
                    best = s.Payload[(int)offset..];
                }
            }

            if (best.IsEmpty)
            {
                break;
            }

            var take = (int)Math.Min(best.Length, limit - output.Count);
            output.AddRange(best.Span[..take]);
            next += (uint)take;
        }

        return [.. output];
    }

    /// <summary>
    /// At Go, what a restored leg takes from the capture: the bytes contiguous from its rcv_nxt now, or null when
    /// rcv_nxt is not where the restore left it (something else delivered to the socket: appending could duplicate).
    /// </summary>
    public static byte[]? AtGo(uint restoredRcvNxt, uint rcvNxt, IReadOnlyList<CapturedSegment> segments, int maxBytes) =>
        rcvNxt != restoredRcvNxt ? null : Contiguous(rcvNxt, segments, maxBytes);
}
