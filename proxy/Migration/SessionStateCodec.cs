using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Migration;

/// <summary>Why a session state was refused; one member per reason (docs/conventions.md §6).</summary>
public enum SessionStateRejection
{
    None,
    Truncated,
    BadMagic,
    UnsupportedVersion,
    UnknownKind,
    BadLegCount,
    BadAddressFamily,
    MixedAddressFamilies,
    BadMss,
    UnknownOptions,
    BadWindowScale,
    UnsentBeyondQueue,
    QueueTooLong,
    BadUdpFlag,
    BadUdpOutbound,
    BadUserName,
    TrailingBytes,
}

/// <summary>
/// The wire format of a frozen session (issue 19): version 1, big-endian, whole in one channel record.
/// Pure span codec (docs/conventions.md §5): every length is checked against the bytes left before
/// anything is allocated, so a malformed state is Invalid with a reason, never an exception.
/// </summary>
/// <remarks>
/// <code>
/// "L2MS" | version u8 = 1 | kind u8 | leg count u8 | legs | held-to-target u32+bytes | held-to-client u32+bytes
///        | udp u8 (0|1) [client endpoint | relay endpoint | outbound u8 (bit 0 IPv4, bit 1 IPv6) | those endpoints
///                        | method u8 | user u8+bytes (UTF-8, 0: none)]
/// leg:      local endpoint | remote endpoint | send seq u32 | recv seq u32 | mss u16 | options u8
///           | snd wscale u8 | rcv wscale u8 | timestamp u32 | snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup u32
///           | unsent u32 | send queue u32+bytes | receive queue u32+bytes
/// endpoint: family u8 (4|6) | address 4|16 | port u16
/// </code>
/// A relay has two legs (client, then target); a UDP association one (its control connection) and the
/// association. The shadow node of docs/design.md#live-migration-design reuses the format.
/// </remarks>
public static class SessionStateCodec
{
    public const byte Version = 1;

    /// <summary>The largest queue or held buffer accepted: above any socket buffer the kernel grants (tcp_wmem, tcp_rmem maxima).</summary>
    public const int MaxQueueLength = 64 * 1024 * 1024;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static ReadOnlySpan<byte> Magic => "L2MS"u8;

    /// <summary>The encoded length of <paramref name="state"/>.</summary>
    public static int GetLength(SessionState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        int length = Magic.Length + 3 + 8 + state.HeldToTarget.Length + state.HeldToClient.Length + 1;
        foreach (var leg in state.Legs)
        {
            length += EndpointLength(leg.Local) + EndpointLength(leg.Remote) + 4 + 4 + 2 + 3 + 4 + 20 + 4 + 4 + leg.SendQueue.Length + 4 + leg.ReceiveQueue.Length;
        }

        if (state.Udp is { } udp)
        {
            length += EndpointLength(udp.Client) + EndpointLength(udp.Relay) + 1 + 1 + 1 + UserBytes(udp.User).Length;
            length += (udp.Outbound4 is { } o4 ? EndpointLength(o4) : 0) + (udp.Outbound6 is { } o6 ? EndpointLength(o6) : 0);
        }

        return length;
    }

    public static void Write(SessionState state, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        int length = GetLength(state);
        var span = output.GetSpan(length)[..length];
        var w = new SpanWriter(span);
        w.Bytes(Magic);
        w.U8(Version);
        w.U8((byte)state.Kind);
        w.U8((byte)state.Legs.Count);
        foreach (var leg in state.Legs)
        {
            w.Endpoint(leg.Local);
            w.Endpoint(leg.Remote);
            w.U32(leg.SendSeq);
            w.U32(leg.RecvSeq);
            w.U16(leg.Mss);
            w.U8((byte)leg.Options);
            w.U8(leg.SndWscale);
            w.U8(leg.RcvWscale);
            w.U32(leg.Timestamp);
            w.U32(leg.Window.SndWl1);
            w.U32(leg.Window.SndWnd);
            w.U32(leg.Window.MaxWindow);
            w.U32(leg.Window.RcvWnd);
            w.U32(leg.Window.RcvWup);
            w.U32((uint)leg.UnsentLength);
            w.Block(leg.SendQueue);
            w.Block(leg.ReceiveQueue);
        }

        w.Block(state.HeldToTarget);
        w.Block(state.HeldToClient);
        w.U8(state.Udp is null ? (byte)0 : (byte)1);
        if (state.Udp is { } udp)
        {
            w.Endpoint(udp.Client);
            w.Endpoint(udp.Relay);
            w.U8((byte)((udp.Outbound4 is null ? 0 : 1) | (udp.Outbound6 is null ? 0 : 2)));
            if (udp.Outbound4 is { } o4)
            {
                w.Endpoint(o4);
            }

            if (udp.Outbound6 is { } o6)
            {
                w.Endpoint(o6);
            }

            w.U8(udp.Method);
            var user = UserBytes(udp.User);
            w.U8((byte)user.Length);
            w.Bytes(user);
        }

        output.Advance(length);
    }

    /// <summary>Parses one whole state: Ok with the state, or Invalid with the reason (never NeedMoreData: a record arrives whole).</summary>
    public static ParseStatus TryParse(ReadOnlySpan<byte> input, out SessionState? state, out SessionStateRejection reason)
    {
        state = null;
        var r = new SpanReader(input);
        reason = Parse(ref r, out state);
        if (reason == SessionStateRejection.None && r.Remaining != 0)
        {
            reason = SessionStateRejection.TrailingBytes;
            state = null;
        }

        return reason == SessionStateRejection.None ? ParseStatus.Ok : ParseStatus.Invalid;
    }

    private static SessionStateRejection Parse(ref SpanReader r, out SessionState? state)
    {
        state = null;
        if (!r.Bytes(Magic.Length, out var magic) || !r.U8(out byte version) || !r.U8(out byte kind) || !r.U8(out byte legCount))
        {
            return SessionStateRejection.Truncated;
        }

        if (!magic.SequenceEqual(Magic))
        {
            return SessionStateRejection.BadMagic;
        }

        if (version != Version)
        {
            return SessionStateRejection.UnsupportedVersion;
        }

        if (kind is not ((byte)SessionKind.TcpRelay or (byte)SessionKind.UdpAssociation))
        {
            return SessionStateRejection.UnknownKind;
        }

        if (legCount != ((SessionKind)kind == SessionKind.TcpRelay ? 2 : 1))
        {
            return SessionStateRejection.BadLegCount;
        }

        var legs = new TcpLegState[legCount];
        for (int i = 0; i < legs.Length; i++)
        {
            var legReason = ParseLeg(ref r, out legs[i]!);
            if (legReason != SessionStateRejection.None)
            {
                return legReason;
            }
        }

        var blockReason = r.Block(out var heldToTarget);
        if (blockReason != SessionStateRejection.None)
        {
            return blockReason;
        }

        blockReason = r.Block(out var heldToClient);
        if (blockReason != SessionStateRejection.None)
        {
            return blockReason;
        }

        if (!r.U8(out byte hasUdp))
        {
            return SessionStateRejection.Truncated;
        }

        if (hasUdp != ((SessionKind)kind == SessionKind.UdpAssociation ? 1 : 0))
        {
            return SessionStateRejection.BadUdpFlag;
        }

        UdpAssociationState? udp = null;
        if (hasUdp == 1)
        {
            var udpReason = ParseUdp(ref r, out udp);
            if (udpReason != SessionStateRejection.None)
            {
                return udpReason;
            }
        }

        state = new SessionState((SessionKind)kind, legs, heldToTarget, heldToClient, udp);
        return SessionStateRejection.None;
    }

    private static SessionStateRejection ParseUdp(ref SpanReader r, out UdpAssociationState? udp)
    {
        udp = null;
        var reason = r.Endpoint(out var client);
        IPEndPoint? relay = null;
        if (reason == SessionStateRejection.None)
        {
            reason = r.Endpoint(out relay);
        }

        if (reason != SessionStateRejection.None)
        {
            return reason;
        }

        if (!r.U8(out byte outbound))
        {
            return SessionStateRejection.Truncated;
        }

        if ((outbound & ~3) != 0)
        {
            return SessionStateRejection.BadUdpOutbound;
        }

        IPEndPoint? outbound4 = null, outbound6 = null;
        if ((outbound & 1) != 0 && (reason = r.Endpoint(out outbound4)) != SessionStateRejection.None)
        {
            return reason;
        }

        if ((outbound & 2) != 0 && (reason = r.Endpoint(out outbound6)) != SessionStateRejection.None)
        {
            return reason;
        }

        if (outbound4 is { AddressFamily: not AddressFamily.InterNetwork } || outbound6 is { AddressFamily: not AddressFamily.InterNetworkV6 })
        {
            return SessionStateRejection.BadUdpOutbound;
        }

        if (!r.U8(out byte method) || !r.U8(out byte userLength) || !r.Bytes(userLength, out var userBytes))
        {
            return SessionStateRejection.Truncated;
        }

        string? user = null;
        if (userLength > 0)
        {
            try
            {
                user = StrictUtf8.GetString(userBytes);
            }
            catch (DecoderFallbackException)
            {
                return SessionStateRejection.BadUserName;
            }
        }

        udp = new UdpAssociationState(client!, relay!, outbound4, outbound6, method, user);
        return SessionStateRejection.None;
    }

    /// <summary>The user name as carried; longer than RFC 1929 allows is the writer's error.</summary>
    private static byte[] UserBytes(string? user)
    {
        var bytes = user is null ? [] : StrictUtf8.GetBytes(user);
        return bytes.Length <= UdpAssociationState.MaxUserLength ? bytes
            : throw new ArgumentException($"A user name of {bytes.Length} bytes is longer than RFC 1929 allows.", nameof(user));
    }

    private static SessionStateRejection ParseLeg(ref SpanReader r, out TcpLegState? leg)
    {
        leg = null;
        var reason = r.Endpoint(out var local);
        if (reason == SessionStateRejection.None)
        {
            reason = r.Endpoint(out var remoteEndpoint);
            if (reason == SessionStateRejection.None && remoteEndpoint!.AddressFamily != local!.AddressFamily)
            {
                reason = SessionStateRejection.MixedAddressFamilies;
            }

            if (reason != SessionStateRejection.None)
            {
                return reason;
            }

            if (!r.U32(out uint sendSeq) || !r.U32(out uint recvSeq) || !r.U16(out ushort mss) || !r.U8(out byte options)
                || !r.U8(out byte sndWscale) || !r.U8(out byte rcvWscale) || !r.U32(out uint timestamp)
                || !r.U32(out uint wl1) || !r.U32(out uint sndWnd) || !r.U32(out uint maxWindow) || !r.U32(out uint rcvWnd) || !r.U32(out uint rcvWup)
                || !r.U32(out uint unsent))
            {
                return SessionStateRejection.Truncated;
            }

            if (mss == 0)
            {
                return SessionStateRejection.BadMss;
            }

            if ((options & ~(byte)(TcpLegOptions.Sack | TcpLegOptions.Timestamps | TcpLegOptions.WindowScale)) != 0)
            {
                return SessionStateRejection.UnknownOptions;
            }

            if (sndWscale > TcpLegState.MaxWscale || rcvWscale > TcpLegState.MaxWscale)
            {
                return SessionStateRejection.BadWindowScale;
            }

            reason = r.Block(out var sendQueue);
            if (reason == SessionStateRejection.None)
            {
                reason = r.Block(out var receiveQueue);
                if (reason == SessionStateRejection.None && unsent > (uint)sendQueue.Length)
                {
                    reason = SessionStateRejection.UnsentBeyondQueue;
                }

                if (reason == SessionStateRejection.None)
                {
                    leg = new TcpLegState(local!, remoteEndpoint!, sendSeq, recvSeq, sendQueue, (int)unsent, receiveQueue, mss, (TcpLegOptions)options,
                        sndWscale, rcvWscale, timestamp, new TcpLegWindow(wl1, sndWnd, maxWindow, rcvWnd, rcvWup));
                }
            }
        }

        return reason;
    }

    private static int EndpointLength(IPEndPoint endpoint) => 1 + (endpoint.AddressFamily == AddressFamily.InterNetworkV6 ? 16 : 4) + 2;

    private ref struct SpanWriter(Span<byte> span)
    {
        private readonly Span<byte> _span = span;
        private int _offset;

        public void U8(byte value) => _span[_offset++] = value;

        public void U16(ushort value)
        {
            BinaryPrimitives.WriteUInt16BigEndian(_span[_offset..], value);
            _offset += 2;
        }

        public void U32(uint value)
        {
            BinaryPrimitives.WriteUInt32BigEndian(_span[_offset..], value);
            _offset += 4;
        }

        public void Bytes(ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(_span[_offset..]);
            _offset += bytes.Length;
        }

        public void Block(byte[] bytes)
        {
            U32((uint)bytes.Length);
            Bytes(bytes);
        }

        public void Endpoint(IPEndPoint endpoint)
        {
            bool v6 = endpoint.AddressFamily == AddressFamily.InterNetworkV6;
            U8(v6 ? (byte)6 : (byte)4);
            endpoint.Address.TryWriteBytes(_span[_offset..], out int written);
            _offset += written;
            U16((ushort)endpoint.Port);
        }
    }

    private ref struct SpanReader(ReadOnlySpan<byte> span)
    {
        private readonly ReadOnlySpan<byte> _span = span;
        private int _offset;

        public readonly int Remaining => _span.Length - _offset;

        public bool U8(out byte value)
        {
            value = 0;
            if (Remaining < 1)
            {
                return false;
            }

            value = _span[_offset++];
            return true;
        }

        public bool U16(out ushort value)
        {
            value = 0;
            if (Remaining < 2)
            {
                return false;
            }

            value = BinaryPrimitives.ReadUInt16BigEndian(_span[_offset..]);
            _offset += 2;
            return true;
        }

        public bool U32(out uint value)
        {
            value = 0;
            if (Remaining < 4)
            {
                return false;
            }

            value = BinaryPrimitives.ReadUInt32BigEndian(_span[_offset..]);
            _offset += 4;
            return true;
        }

        public bool Bytes(int length, out ReadOnlySpan<byte> bytes)
        {
            bytes = default;
            if (Remaining < length)
            {
                return false;
            }

            bytes = _span.Slice(_offset, length);
            _offset += length;
            return true;
        }

        public SessionStateRejection Block(out byte[] bytes)
        {
            bytes = [];
            if (!U32(out uint length))
            {
                return SessionStateRejection.Truncated;
            }

            if (length > MaxQueueLength)
            {
                return SessionStateRejection.QueueTooLong;
            }

            if (!Bytes((int)length, out var block))
            {
                return SessionStateRejection.Truncated;
            }

            bytes = block.ToArray();
            return SessionStateRejection.None;
        }

        public SessionStateRejection Endpoint(out IPEndPoint? endpoint)
        {
            endpoint = null;
            if (!U8(out byte family))
            {
                return SessionStateRejection.Truncated;
            }

            if (family is not (4 or 6))
            {
                return SessionStateRejection.BadAddressFamily;
            }

            if (!Bytes(family == 4 ? 4 : 16, out var address) || !U16(out ushort port))
            {
                return SessionStateRejection.Truncated;
            }

            endpoint = new IPEndPoint(new IPAddress(address), port);
            return SessionStateRejection.None;
        }
    }
}
