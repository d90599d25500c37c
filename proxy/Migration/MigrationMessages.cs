using System.Buffers.Binary;
using System.Text;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Migration;

/// <summary>The kinds of message inside a migration channel record.</summary>
public enum MigrationMessageType : byte
{
    /// <summary>Old node → new: a frozen session (<see cref="SessionStateCodec"/>).</summary>
    State = 1,
    /// <summary>New node → old: the session is restored and silent (ok), or it could not be (a refusal word).</summary>
    Ready = 2,
    /// <summary>Old node → new: thaw it (the old copy is closed), or drop it (the old copy resumes).</summary>
    Go = 3,
    /// <summary>Old node → new, before any pause: the batch's inbound flows, to capture while they move (<see cref="MigrationFlows"/>).</summary>
    Prepare = 16,
    /// <summary>New node → old: capturing (ok), or not (no capture: the ends resend on their timers).</summary>
    Prepared = 17,
}

/// <summary>One message of the migration channel: the session it is about and what it says.</summary>
/// <param name="Type">What the message says.</param>
/// <param name="Session">The session's id on the old node.</param>
/// <param name="Ok">Ready: restored; Go: thaw (else drop the silent copy).</param>
/// <param name="Reason">Ready, not ok: why (a <see cref="MigrationRefusals"/> word), else empty.</param>
/// <param name="Payload">State: the encoded session state, else empty.</param>
public readonly record struct MigrationMessage(MigrationMessageType Type, ulong Session, bool Ok, string Reason, ReadOnlyMemory<byte> Payload);

/// <summary>
/// The messages of the migration channel, one per record (issue 19). Two phases per session so that
/// only one node ever sends for it: the new node restores silently and answers Ready; the old node
/// answers Go and closes its frozen copy, or No-go and resumes; the new node thaws only on Go.
/// Pure codec (docs/conventions.md §5).
/// </summary>
/// <remarks>
/// <code>
/// type u8 | session u64 | State: state bytes | Ready: ok u8, reason (UTF-8, rest) | Go: go u8
/// </code>
/// </remarks>
public static class MigrationMessages
{
    private const int HeaderLength = 9;
    private const int MaxReasonLength = 64;

    public static byte[] State(ulong session, ReadOnlySpan<byte> state)
    {
        var bytes = new byte[HeaderLength + state.Length];
        Header(bytes, MigrationMessageType.State, session);
        state.CopyTo(bytes.AsSpan(HeaderLength));
        return bytes;
    }

    public static byte[] Ready(ulong session, MigrationRefusal? refusal)
    {
        var reason = refusal is { } r ? Encoding.ASCII.GetBytes(r.Word()) : [];
        var bytes = new byte[HeaderLength + 1 + reason.Length];
        Header(bytes, MigrationMessageType.Ready, session);
        bytes[HeaderLength] = refusal is null ? (byte)1 : (byte)0;
        reason.CopyTo(bytes.AsSpan(HeaderLength + 1));
        return bytes;
    }

    public static byte[] Go(ulong session, bool go)
    {
        var bytes = new byte[HeaderLength + 1];
        Header(bytes, MigrationMessageType.Go, session);
        bytes[HeaderLength] = go ? (byte)1 : (byte)0;
        return bytes;
    }

    /// <summary>The batch's inbound flows (<see cref="MigrationFlows.Write"/>); <paramref name="sessions"/> is how many sessions they belong to.</summary>
    public static byte[] Prepare(ulong sessions, ReadOnlySpan<byte> flows)
    {
        var bytes = new byte[HeaderLength + flows.Length];
        Header(bytes, MigrationMessageType.Prepare, sessions);
        flows.CopyTo(bytes.AsSpan(HeaderLength));
        return bytes;
    }

    public static byte[] Prepared(ulong sessions, bool capturing)
    {
        var bytes = new byte[HeaderLength + 1];
        Header(bytes, MigrationMessageType.Prepared, sessions);
        bytes[HeaderLength] = capturing ? (byte)1 : (byte)0;
        return bytes;
    }

    /// <summary>Parses one whole record's plaintext: Ok, or Invalid (never NeedMoreData: records arrive whole).</summary>
    public static ParseStatus TryParse(ReadOnlyMemory<byte> input, out MigrationMessage message)
    {
        message = default;
        var span = input.Span;
        if (span.Length < HeaderLength)
        {
            return ParseStatus.Invalid;
        }
        var type = (MigrationMessageType)span[0];
        ulong session = BinaryPrimitives.ReadUInt64BigEndian(span[1..]);
        var rest = input[HeaderLength..];
        switch (type)
        {
            case MigrationMessageType.State:
                message = new MigrationMessage(type, session, true, "", rest);
                return ParseStatus.Ok;
            case MigrationMessageType.Ready when rest.Length >= 1 && rest.Length <= 1 + MaxReasonLength && rest.Span[0] <= 1:
                var reason = rest.Span[1..];
                foreach (var b in reason)
                {
                    if (b is not ((>= (byte)'a' and <= (byte)'z') or (byte)'-'))
                    {
                        return ParseStatus.Invalid;
                    }
                }
                message = new MigrationMessage(type, session, rest.Span[0] == 1, Encoding.ASCII.GetString(reason), ReadOnlyMemory<byte>.Empty);
                return ParseStatus.Ok;
            case MigrationMessageType.Prepare:
                message = new MigrationMessage(type, session, true, "", rest);
                return ParseStatus.Ok;
            case MigrationMessageType.Go or MigrationMessageType.Prepared when rest.Length == 1 && rest.Span[0] <= 1:
                message = new MigrationMessage(type, session, rest.Span[0] == 1, "", ReadOnlyMemory<byte>.Empty);
                return ParseStatus.Ok;
            default:
                return ParseStatus.Invalid;
        }
    }

    private static void Header(Span<byte> bytes, MigrationMessageType type, ulong session)
    {
        bytes[0] = (byte)type;
        BinaryPrimitives.WriteUInt64BigEndian(bytes[1..], session);
    }
}

/// <summary>
/// The payload of Prepare: inbound flows as 36 bytes each, source address (16, IPv4 mapped), source
/// port (2), destination address (16), destination port (2), big-endian. Pure codec.
/// </summary>
public static class MigrationFlows
{
    private const int FlowLength = 36;

    public static byte[] Write(IReadOnlyList<InboundFlow> flows)
    {
        ArgumentNullException.ThrowIfNull(flows);
        var bytes = new byte[flows.Count * FlowLength];
        for (var i = 0; i < flows.Count; i++)
        {
            var at = bytes.AsSpan(i * FlowLength);
            BinaryPrimitives.WriteUInt128BigEndian(at, flows[i].Source);
            BinaryPrimitives.WriteUInt16BigEndian(at[16..], flows[i].SourcePort);
            BinaryPrimitives.WriteUInt128BigEndian(at[18..], flows[i].Destination);
            BinaryPrimitives.WriteUInt16BigEndian(at[34..], flows[i].DestinationPort);
        }
        return bytes;
    }

    /// <summary>The flows, or null when the length is not a whole number of flows.</summary>
    public static List<InboundFlow>? TryRead(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length % FlowLength != 0)
        {
            return null;
        }
        var flows = new List<InboundFlow>(bytes.Length / FlowLength);
        for (var at = 0; at < bytes.Length; at += FlowLength)
        {
            var f = bytes[at..];
            flows.Add(new InboundFlow(BinaryPrimitives.ReadUInt128BigEndian(f), BinaryPrimitives.ReadUInt16BigEndian(f[16..]),
                BinaryPrimitives.ReadUInt128BigEndian(f[18..]), BinaryPrimitives.ReadUInt16BigEndian(f[34..])));
        }
        return flows;
    }
}
