using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using L2Balance.Common.Linux;
using L2Balance.Proxy.Interop;
using Epoll = L2Balance.Proxy.Interop.Interop.Epoll;

namespace L2Balance.Proxy.Relay;

/// <summary>
/// Something a <see cref="UdpPoller"/> calls on its thread when a registered socket has datagrams.
/// </summary>
internal interface IUdpReadable
{
    /// <summary>
    /// Handles the datagrams queued on the socket, without blocking: non-blocking receives and
    /// sends only (anything slower, a name to resolve, goes to a task). <paramref name="buffer"/> is
    /// the poller's, valid during the call.
    /// </summary>
    public void OnReadable(byte[] buffer);

    /// <summary>
    /// Told, on the poller's thread, that <see cref="OnReadable"/> threw: the poller has dropped this
    /// registration (it would fail again on the same queued datagram) and serves the others; the
    /// handler counts, logs and ends what it belongs to. Must not throw.
    /// </summary>
    public void OnFailed(Exception exception)
    {
    }
}

/// <summary>
/// The UDP relay's readiness loop: one thread and one epoll instance per process, where every
/// association's sockets are registered for EPOLLIN (level-triggered) and relayed inline: one
/// wake-up per datagram, where the runtime's async sockets hand each receive to a pool thread and
/// wake again for EPOLLOUT on every send. The thread blocks in epoll_wait as soon as no datagram is
/// queued; busy polling and a raised priority were measured slower (docs/benchmarks.md#udp-relay).
/// </summary>
internal sealed class UdpPoller
{
    /// <summary>The pause after a failed epoll_wait: long enough not to spin a core, short enough to go unnoticed.</summary>
    private static readonly TimeSpan WaitFailurePause = TimeSpan.FromMilliseconds(100);

    /// <summary>Events taken per epoll_wait.</summary>
    private const int MaxEvents = 64;

    /// <summary>Largest UDP payload plus room for a SOCKS UDP header in front (4 + 16 + 2 bytes).</summary>
    internal const int BufferSize = 65536 + 22;

    private static readonly Lazy<UdpPoller> SharedPoller = new(() => new UdpPoller(), LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly SafeEpollHandle _epoll = SafeEpollHandle.Create();
    private readonly ConcurrentDictionary<ulong, (Socket Socket, IUdpReadable Handler)> _handlers = new();
    private long _nextKey;
    private static long s_waitFailures;

    private UdpPoller()
    {
        var thread = new Thread(Run) { IsBackground = true, Name = "l2proxy udp" };
        thread.Start();
    }

    /// <summary>The process's poller, started on first use.</summary>
    public static UdpPoller Shared => SharedPoller.Value;

    /// <summary>epoll_wait calls that failed other than by EINTR (each followed by a pause); counted with the loop's errors.</summary>
    public static long WaitFailures => Interlocked.Read(ref s_waitFailures);

    /// <summary>
    /// Registers <paramref name="socket"/> for EPOLLIN with its handler; returns the key to
    /// <see cref="Unregister"/> with. Throws <see cref="IOException"/> naming errno.
    /// </summary>
    public unsafe ulong Register(Socket socket, IUdpReadable handler)
    {
        var key = (ulong)Interlocked.Increment(ref _nextKey);
        _handlers[key] = (socket, handler);
        byte* ev = stackalloc byte[16];
        *(uint*)ev = Epoll.EPOLLIN;
        *(ulong*)(ev + Epoll.EventDataOffset) = key;
        if (Epoll.epoll_ctl(_epoll, Epoll.EPOLL_CTL_ADD, socket.SafeHandle, ev) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            _handlers.TryRemove(key, out _);
            throw new IOException($"epoll_ctl(EPOLL_CTL_ADD): {Errno.Name(errno)}");
        }
        return key;
    }

    /// <summary>
    /// Removes a registration before its socket is disposed. An event for it already taken by the
    /// poller's thread finds no handler (or a disposed socket) and is dropped.
    /// </summary>
    public unsafe void Unregister(Socket socket, ulong key)
    {
        _handlers.TryRemove(key, out _);
        Remove(socket);
    }

    private unsafe void Remove(Socket socket)
    {
        try
        {
            byte* ev = stackalloc byte[16];
            _ = Epoll.epoll_ctl(_epoll, Epoll.EPOLL_CTL_DEL, socket.SafeHandle, ev);
        }
        catch (ObjectDisposedException)
        {
            // Closing the socket removed it from the epoll set already.
        }
    }

    private unsafe void Run()
    {
        var buffer = GC.AllocateUninitializedArray<byte>(BufferSize, pinned: true);
        var events = stackalloc byte[MaxEvents * Epoll.EventSize];
        while (true)
        {
            var n = Epoll.epoll_wait(_epoll, events, MaxEvents, -1);
            if (n < 0)
            {
                if (Marshal.GetLastPInvokeError() != Epoll.EINTR)
                {
                    // Nothing else is expected of a valid epoll descriptor; if it happens, count and pause rather than spin.
                    Interlocked.Increment(ref s_waitFailures);
                    Thread.Sleep(WaitFailurePause);
                }
                continue;
            }
            for (int i = 0; i < n; i++)
            {
                var key = *(ulong*)(events + i * Epoll.EventSize + Epoll.EventDataOffset);
                if (!_handlers.TryGetValue(key, out var registered))
                {
                    continue;
                }
                var handler = registered.Handler;
                try
                {
                    handler.OnReadable(buffer);
                }
                catch (ObjectDisposedException)
                {
                    // The association closed its socket while the event was on its way.
                }
                catch (Exception e)
                {
                    // Any other error is the handler's: drop it (level-triggered, it would throw again at once)
                    // and let it end its association; this thread serves every other one.
                    _handlers.TryRemove(key, out _);
                    Remove(registered.Socket);
                    handler.OnFailed(e);
                }
            }
        }
    }
}
