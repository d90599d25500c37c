using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using L2Balance.Common.Linux;
using static L2Balance.Proxy.Interop.Interop.TcpRepair;

namespace L2Balance.Proxy.Migration;

/// <summary>
/// Freezes an established TCP socket with TCP_REPAIR and rebuilds it on another socket (issue 19),
/// as CRIU does for whole processes. Needs CAP_NET_ADMIN in the socket's network namespace.
/// </summary>
/// <remarks>
/// A frozen socket sends nothing; closing it sends neither FIN nor RST. It still takes packets in, so
/// the caller drops the flow's input first (the filter exception of docs/design.md#live-migration-design)
/// or the state read here goes stale. The calls' order follows the kernel's checks in net/ipv4/tcp.c:
/// sequence numbers before connect, options and queues after it, the window last.
/// </remarks>
public static class TcpRepair
{
    /// <summary>
    /// Puts <paramref name="socket"/> in repair mode and reads its state. On failure the socket leaves
    /// repair mode again and the exception names the call and errno.
    /// </summary>
    public static TcpLegState Freeze(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var handle = socket.SafeHandle;
        Span<byte> info = stackalloc byte[TcpInfoLength];
        GetOption(handle, SOL_TCP, TCP_INFO, info, "TCP_INFO");
        if (info[TcpInfoStateOffset] != TCP_ESTABLISHED)
        {
            throw new MigrationException($"freeze: the connection is in TCP state {info[TcpInfoStateOffset]}, not established");
        }

        SetInt(handle, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON, "TCP_REPAIR");
        try
        {
            return ReadState(socket, info);
        }
        catch
        {
            Unfreeze(socket);
            throw;
        }
    }

    /// <summary>Takes <paramref name="socket"/> out of repair mode: the connection carries on where it stopped (a restore elsewhere failed).</summary>
    public static void Unfreeze(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        SetInt(socket.SafeHandle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "TCP_REPAIR_QUEUE");
        // Off with a window probe: the peer answers at once, so a stalled side resumes without waiting for its timer.
        SetInt(socket.SafeHandle, SOL_TCP, TCP_REPAIR, TCP_REPAIR_OFF, "TCP_REPAIR");
        // Leaving repair mode clears sk_reuse: without it again, the next restore on the same local port (the service's) is EADDRINUSE.
        SetInt(socket.SafeHandle, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    }

    /// <summary>
    /// Rebuilds <paramref name="state"/> on <paramref name="socket"/>, a new TCP socket of the same family
    /// in a namespace that holds <see cref="TcpLegState.Local"/>'s address. The socket ends connected with its
    /// queues filled, still in repair mode; a failed or abandoned restore ends with <see cref="CloseFrozen"/>.
    /// With <paramref name="sentQueue"/> false the bytes the old socket had sent wait for <see cref="RestoreSentQueue"/>:
    /// once in, they are in flight and arm the retransmission timer, which sends from a socket in repair mode too
    /// (docs/design.md#the-pause: an unmarked silent copy must send nothing before Go).
    /// </summary>
    public static void Restore(Socket socket, TcpLegState state, bool sentQueue = true)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(state);
        var handle = socket.SafeHandle;
        EnsureBuffer(handle, SO_SNDBUF, SO_SNDBUFFORCE, state.SendQueue.Length, "SO_SNDBUFFORCE");
        EnsureBuffer(handle, SO_RCVBUF, SO_RCVBUFFORCE, state.ReceiveQueue.Length, "SO_RCVBUFFORCE");
        SetInt(handle, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON, "TCP_REPAIR");

        SetInt(handle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE");
        SetInt(handle, SOL_TCP, TCP_QUEUE_SEQ, unchecked((int)(state.SendSeq - (uint)state.SendQueue.Length)), "TCP_QUEUE_SEQ(send)");
        SetInt(handle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE");
        SetInt(handle, SOL_TCP, TCP_QUEUE_SEQ, unchecked((int)(state.RecvSeq - (uint)state.ReceiveQueue.Length)), "TCP_QUEUE_SEQ(recv)");

        // In repair mode, connect sends no SYN: the socket becomes established at the sequence numbers set above.
        try
        {
            // bind(2) itself: Socket.Bind sets SO_REUSEADDR first, which replaces the SK_FORCE_REUSE of repair
            // mode, and the bind next to the service's listener (same address and port) would be EADDRINUSE.
            L2Balance.Proxy.Server.PortBinder.BindExclusive(socket, state.Local);
            socket.Connect(state.Remote);
        }
        catch (SocketException e)
        {
            throw new MigrationException($"restore: bind {state.Local} / connect {state.Remote}: {e.SocketErrorCode}", e);
        }

        SetRepairOptions(handle, state);
        if ((state.Options & TcpLegOptions.Timestamps) != 0)
        {
            SetInt(handle, SOL_TCP, TCP_TIMESTAMP, unchecked((int)state.Timestamp), "TCP_TIMESTAMP");
        }

        SetInt(handle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE");
        SendAll(handle, state.ReceiveQueue, "send(receive queue)");
        if (sentQueue)
        {
            RestoreSentQueue(socket, state);
        }

        var window = new tcp_repair_window
        {
            snd_wl1 = state.Window.SndWl1,
            snd_wnd = state.Window.SndWnd,
            max_window = state.Window.MaxWindow,
            rcv_wnd = state.Window.RcvWnd,
            rcv_wup = state.Window.RcvWup,
        };
        SetOption(handle, SOL_TCP, TCP_REPAIR_WINDOW, MemoryMarshal.AsBytes(new Span<tcp_repair_window>(ref window)), "TCP_REPAIR_WINDOW");

    }

    /// <summary>
    /// The bytes the old socket had sent, into <paramref name="socket"/>'s send queue as sent-unacknowledged (repair mode,
    /// TCP_SEND_QUEUE): retransmitted by the kernel, never sent twice by us. Part of <see cref="Restore"/>, or deferred to Go.
    /// </summary>
    public static void RestoreSentQueue(Socket socket, TcpLegState state)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(state);
        SetInt(socket.SafeHandle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE");
        SendAll(socket.SafeHandle, state.SendQueue.AsSpan(0, state.SendQueue.Length - state.UnsentLength), "send(send queue)");
    }

    /// <summary>
    /// Takes a socket restored by <see cref="Restore"/> out of repair mode and sends the bytes the old one
    /// never sent: from here it is live. Separate from the restore so Go decides when a leg goes live;
    /// <paramref name="afterProbe"/> runs between the thaw's window probe and those bytes (the owed acknowledgement).
    /// </summary>
    public static void Thaw(Socket socket, TcpLegState state, Action? afterProbe = null)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(state);
        Unfreeze(socket);
        afterProbe?.Invoke();
        SendAll(socket.SafeHandle, state.SendQueue.AsSpan(state.SendQueue.Length - state.UnsentLength), "send(unsent)");
    }

    /// <summary>rcv_nxt of a socket in repair mode (TCP_QUEUE_SEQ with the receive queue selected, net/ipv4/tcp.c do_tcp_getsockopt).</summary>
    public static uint ReceiveNext(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        SetInt(socket.SafeHandle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE");
        return (uint)GetInt(socket.SafeHandle, SOL_TCP, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ(recv)");
    }

    /// <summary>
    /// What a socket in repair mode would acknowledge now (docs/design.md#the-pause): snd_nxt (TCP_QUEUE_SEQ of the
    /// send queue: in repair mode every queued byte counts as sent), rcv_nxt, the window left of the announced one
    /// (TCP_REPAIR_WINDOW, repair mode only) and the timestamp clock when <paramref name="state"/> has timestamps on.
    /// </summary>
    public static TcpAckPoint AckPoint(Socket socket, TcpLegState state)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(state);
        var handle = socket.SafeHandle;
        SetInt(handle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE");
        var seq = (uint)GetInt(handle, SOL_TCP, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ(send)");
        var ack = ReceiveNext(socket);
        var window = default(tcp_repair_window);
        GetOption(handle, SOL_TCP, TCP_REPAIR_WINDOW, MemoryMarshal.AsBytes(new Span<tcp_repair_window>(ref window)), "TCP_REPAIR_WINDOW");
        var scale = (state.Options & TcpLegOptions.WindowScale) != 0 ? state.RcvWscale : (byte)0;
        uint? tsVal = (state.Options & TcpLegOptions.Timestamps) != 0 ? (uint)GetInt(handle, SOL_TCP, TCP_TIMESTAMP, "TCP_TIMESTAMP") : null;
        return new TcpAckPoint(seq, ack, TcpAckPoint.WindowField(window.rcv_wup, window.rcv_wnd, ack, scale), tsVal);
    }

    /// <summary>Appends <paramref name="bytes"/> to the receive queue of a socket in repair mode at its rcv_nxt, which the kernel advances past them (tcp_send_rcvq).</summary>
    public static void AppendReceived(Socket socket, ReadOnlySpan<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var handle = socket.SafeHandle;
        EnsureBuffer(handle, SO_RCVBUF, SO_RCVBUFFORCE, Ioctl(handle, SIOCINQ, "SIOCINQ") + bytes.Length, "SO_RCVBUFFORCE");
        SetInt(handle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE");
        SendAll(handle, bytes, "send(receive queue at Go)");
    }

    /// <summary>Whether the socket's connection is established (not half-closed, not closing): only such a connection freezes.</summary>
    public static bool IsEstablished(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Span<byte> info = stackalloc byte[TcpInfoLength];
        GetOption(socket.SafeHandle, SOL_TCP, TCP_INFO, info, "TCP_INFO");
        return info[TcpInfoStateOffset] == TCP_ESTABLISHED;
    }

    /// <summary>The bytes a connected socket holds now: its send queue (unacknowledged and unsent) and its unread receive queue.</summary>
    public static long QueuedBytes(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        return (long)Ioctl(socket.SafeHandle, SIOCOUTQ, "SIOCOUTQ") + Ioctl(socket.SafeHandle, SIOCINQ, "SIOCINQ");
    }

    /// <summary>Marks <paramref name="socket"/> with SO_MARK <paramref name="mark"/> (CAP_NET_ADMIN): the filter of a node tells moved-in flows by it.</summary>
    public static void Mark(Socket socket, uint mark)
    {
        ArgumentNullException.ThrowIfNull(socket);
        SetInt(socket.SafeHandle, SOL_SOCKET, SO_MARK, unchecked((int)mark), "SO_MARK");
    }

    /// <summary>
    /// Closes a frozen socket without a FIN or RST: its copy lives on elsewhere (or never went live).
    /// With the send queue selected, even a FIN queued by a close would not be transmitted.
    /// </summary>
    public static void CloseFrozen(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        // Best effort: a socket that never entered repair mode (EPERM here) was never connected, so its close sends nothing either.
        _ = TrySetInt(socket.SafeHandle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
        socket.Dispose();
    }

    /// <summary>
    /// Closes a restored socket whose session is lost (Go came, its thaw failed) with a RST to its end: out of repair
    /// mode (a no-op when it is out already), then a zero linger. Best effort: the end learns at once instead of
    /// waiting on a peer that went silent.
    /// </summary>
    public static void Abort(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        _ = TrySetInt(socket.SafeHandle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
        _ = TrySetInt(socket.SafeHandle, SOL_TCP, TCP_REPAIR, TCP_REPAIR_OFF);
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Closed without the RST: the end learns on its own timer.
        }
        socket.Dispose();
    }

    private static TcpLegState ReadState(Socket socket, ReadOnlySpan<byte> info)
    {
        var handle = socket.SafeHandle;
        SetInt(handle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE");
        uint sendSeq = (uint)GetInt(handle, SOL_TCP, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ(send)");
        int outq = Ioctl(handle, SIOCOUTQ, "SIOCOUTQ");
        int unsent = Ioctl(handle, SIOCOUTQNSD, "SIOCOUTQNSD");
        var sendQueue = Peek(handle, outq, "recv(MSG_PEEK send queue)");

        SetInt(handle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE");
        uint recvSeq = (uint)GetInt(handle, SOL_TCP, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ(recv)");
        int inq = Ioctl(handle, SIOCINQ, "SIOCINQ");
        var receiveQueue = Peek(handle, inq, "recv(MSG_PEEK receive queue)");
        SetInt(handle, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "TCP_REPAIR_QUEUE");

        // In repair mode TCP_MAXSEG reads the clamp, the value TCPOPT_MSS restores.
        int mss = GetInt(handle, SOL_TCP, TCP_MAXSEG, "TCP_MAXSEG");
        byte tcpiOptions = info[TcpInfoOptionsOffset];
        var options = TcpLegOptions.None;
        options |= (tcpiOptions & TCPI_OPT_SACK) != 0 ? TcpLegOptions.Sack : 0;
        options |= (tcpiOptions & TCPI_OPT_TIMESTAMPS) != 0 ? TcpLegOptions.Timestamps : 0;
        options |= (tcpiOptions & TCPI_OPT_WSCALE) != 0 ? TcpLegOptions.WindowScale : 0;
        uint timestamp = (options & TcpLegOptions.Timestamps) != 0 ? (uint)GetInt(handle, SOL_TCP, TCP_TIMESTAMP, "TCP_TIMESTAMP") : 0;

        var window = default(tcp_repair_window);
        GetOption(handle, SOL_TCP, TCP_REPAIR_WINDOW, MemoryMarshal.AsBytes(new Span<tcp_repair_window>(ref window)), "TCP_REPAIR_WINDOW");

        return new TcpLegState(
            (IPEndPoint)socket.LocalEndPoint!,
            (IPEndPoint)socket.RemoteEndPoint!,
            sendSeq,
            recvSeq,
            sendQueue,
            unsent,
            receiveQueue,
            (ushort)Math.Clamp(mss, 0, ushort.MaxValue),
            options,
            (byte)(info[TcpInfoWscaleOffset] & 0xF),
            (byte)(info[TcpInfoWscaleOffset] >> 4),
            timestamp,
            new TcpLegWindow(window.snd_wl1, window.snd_wnd, window.max_window, window.rcv_wnd, window.rcv_wup));
    }

    private static void SetRepairOptions(SafeHandle handle, TcpLegState state)
    {
        Span<tcp_repair_opt> options = stackalloc tcp_repair_opt[4];
        int count = 0;
        options[count++] = new tcp_repair_opt { opt_code = TCPOPT_MSS, opt_val = state.Mss };
        if ((state.Options & TcpLegOptions.WindowScale) != 0)
        {
            options[count++] = new tcp_repair_opt { opt_code = TCPOPT_WINDOW, opt_val = state.SndWscale | ((uint)state.RcvWscale << 16) };
        }

        if ((state.Options & TcpLegOptions.Sack) != 0)
        {
            options[count++] = new tcp_repair_opt { opt_code = TCPOPT_SACK_PERM };
        }

        if ((state.Options & TcpLegOptions.Timestamps) != 0)
        {
            options[count++] = new tcp_repair_opt { opt_code = TCPOPT_TIMESTAMP };
        }

        SetOption(handle, SOL_TCP, TCP_REPAIR_OPTIONS, MemoryMarshal.AsBytes(options[..count]), "TCP_REPAIR_OPTIONS");
    }

    /// <summary>Grows the socket's buffer to hold a restored queue twice over (the kernel counts overhead per byte).</summary>
    private static void EnsureBuffer(SafeHandle handle, int option, int forceOption, int queueLength, string name)
    {
        int wanted = (2 * queueLength) + (64 * 1024);
        if (GetInt(handle, SOL_SOCKET, option, name) < wanted)
        {
            SetInt(handle, SOL_SOCKET, forceOption, wanted, name);
        }
    }

    private static unsafe byte[] Peek(SafeHandle handle, int length, string operation)
    {
        var bytes = new byte[length];
        if (length == 0)
        {
            return bytes;
        }

        fixed (byte* p = bytes)
        {
            nint n;
            do
            {
                n = recv(handle, p, (nuint)length, MSG_PEEK | MSG_DONTWAIT);
            }
            while (n < 0 && Marshal.GetLastPInvokeError() == EINTR);
            if (n < 0)
            {
                throw Failure(operation);
            }

            if (n != length)
            {
                throw new MigrationException($"{operation}: read {n} of {length} bytes");
            }
        }

        return bytes;
    }

    /// <summary>Sends <paramref name="bytes"/> whole; in repair mode into the selected queue, in chunks halved when the kernel cannot allocate one.</summary>
    private static unsafe void SendAll(SafeHandle handle, ReadOnlySpan<byte> bytes, string operation)
    {
        int chunk = Math.Max(bytes.Length, 1);
        fixed (byte* p = bytes)
        {
            int offset = 0;
            while (offset < bytes.Length)
            {
                nint n = send(handle, p + offset, (nuint)Math.Min(chunk, bytes.Length - offset), MSG_DONTWAIT);
                if (n > 0)
                {
                    offset += (int)n;
                    continue;
                }

                int errno = Marshal.GetLastPInvokeError();
                if (n < 0 && errno == EINTR)
                {
                    continue;
                }

                if (n < 0 && (errno == ENOMEM || errno == EAGAIN) && chunk > 1024)
                {
                    chunk /= 2;
                    continue;
                }

                throw n < 0 ? Failure(operation) : new MigrationException($"{operation}: sent 0 bytes");
            }
        }
    }

    private static unsafe int Ioctl(SafeHandle handle, nuint request, string operation)
    {
        int value;
        if (ioctl(handle, request, &value) != 0)
        {
            throw Failure($"ioctl({operation})");
        }

        return value;
    }

    private static unsafe void SetInt(SafeHandle handle, int level, int option, int value, string name)
    {
        if (setsockopt(handle, level, option, &value, sizeof(int)) != 0)
        {
            throw Failure($"setsockopt({name})");
        }
    }

    private static unsafe bool TrySetInt(SafeHandle handle, int level, int option, int value) => setsockopt(handle, level, option, &value, sizeof(int)) == 0;

    private static unsafe int GetInt(SafeHandle handle, int level, int option, string name)
    {
        int value = 0;
        int length = sizeof(int);
        if (getsockopt(handle, level, option, &value, &length) != 0)
        {
            throw Failure($"getsockopt({name})");
        }

        return value;
    }

    private static unsafe void SetOption(SafeHandle handle, int level, int option, ReadOnlySpan<byte> value, string name)
    {
        fixed (byte* p = value)
        {
            if (setsockopt(handle, level, option, p, value.Length) != 0)
            {
                throw Failure($"setsockopt({name})");
            }
        }
    }

    private static unsafe void GetOption(SafeHandle handle, int level, int option, Span<byte> value, string name)
    {
        int length = value.Length;
        fixed (byte* p = value)
        {
            if (getsockopt(handle, level, option, p, &length) != 0)
            {
                throw Failure($"getsockopt({name})");
            }
        }
    }

    private static MigrationException Failure(string operation) => new($"{operation}: {Errno.Name(Marshal.GetLastPInvokeError())}");
}

/// <summary>A migration step that failed: the call and errno, or the state that cannot be restored.</summary>
public sealed class MigrationException : Exception
{
    public MigrationException(string message)
        : base(message)
    {
    }

    public MigrationException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public MigrationException()
    {
    }
}
