using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using L2Balance.Common.Linux;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Rules;
using static L2Balance.Proxy.Interop.Interop.Netlink;

namespace L2Balance.Proxy.Server;

/// <summary>
/// The node's own addresses, tracked live (docs/sockd-conf.md#protected-destinations): a NETLINK_ROUTE
/// socket subscribed to RTMGRP_IPV4_IFADDR and RTMGRP_IPV6_IFADDR wakes a thread of its own at every
/// address added or removed (l2bal adding the VIP included), which reads the interfaces again
/// (getifaddrs) and publishes a new <see cref="LocalAddressSet"/>. Subscribing before the first read
/// means no change between the two is missed; a lost notification (ENOBUFS) is one more read.
/// </summary>
public sealed class NodeAddressWatch : IDisposable
{
    /// <summary>The receive timeout that lets the thread see <see cref="Dispose"/>, and the polling period without netlink.</summary>
    private static readonly TimeSpan Wake = TimeSpan.FromSeconds(1);

    private readonly ProxyLog _log;
    private readonly SafeSocketHandle? _socket;
    private volatile LocalAddressSet _current;
    private volatile bool _stopped;

    private NodeAddressWatch(ProxyLog log, SafeSocketHandle? socket)
    {
        _log = log;
        _socket = socket;
        _current = Read();
    }

    /// <summary>The node's addresses as last read.</summary>
    public LocalAddressSet Current => _current;

    /// <summary>Subscribes, reads the addresses once, and starts the thread that follows their changes.</summary>
    public static NodeAddressWatch Start(ProxyLog log)
    {
        ArgumentNullException.ThrowIfNull(log);
        SafeSocketHandle? socket = null;
        try
        {
            socket = Subscribe();
        }
        catch (IOException e)
        {
            log.AddressWatchFailed(e.Message);
        }
        var watch = new NodeAddressWatch(log, socket);
        // A thread, not the pool: it blocks in recv(2) for the life of the process (docs/conventions.md §14).
        new Thread(watch.Run) { IsBackground = true, Name = "l2proxy address watch" }.Start();
        return watch;
    }

    public void Dispose()
    {
        _stopped = true;
        // The thread's recv holds a reference on the handle: the descriptor closes when it returns.
        _socket?.Dispose();
    }

    private void Run()
    {
        var buffer = new byte[8192];
        while (!_stopped)
        {
            if (_socket is null)
            {
                Thread.Sleep(Wake);
            }
            else if (!Receive(buffer))
            {
                continue;
            }
            if (_stopped)
            {
                return;
            }
            var next = Read();
            if (next.Count != _current.Count || _socket is not null)
            {
                _log.NodeAddressesChanged(next.Count);
            }
            _current = next;
        }
    }

    /// <summary>Waits for a notification and drains the queue; true when the addresses must be read again.</summary>
    private unsafe bool Receive(byte[] buffer)
    {
        fixed (byte* p = buffer)
        {
            nint n = recv(_socket!, p, (nuint)buffer.Length, 0);
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno is EAGAIN or EINTR)
                {
                    return false;
                }
                if (errno != ENOBUFS && !_stopped)
                {
                    _log.AddressWatchFailed($"recv: {Errno.Name(errno)}");
                    Thread.Sleep(Wake);
                }
                return !_stopped;
            }
            // More changes often come together (an address and its routes): one read for all that are queued.
            while (recv(_socket!, p, (nuint)buffer.Length, 0x40 /* MSG_DONTWAIT */) > 0)
            {
            }
            return true;
        }
    }

    private static unsafe SafeSocketHandle Subscribe()
    {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0)
        {
            throw new IOException($"socket(AF_NETLINK, NETLINK_ROUTE): {Errno.Name(Marshal.GetLastPInvokeError())}");
        }
        var handle = new SafeSocketHandle(fd, ownsHandle: true);
        Span<byte> address = stackalloc byte[SockaddrNlSize];
        address.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(address, AF_NETLINK);
        BinaryPrimitives.WriteUInt32LittleEndian(address[8..], RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR);
        // struct timeval { long tv_sec; long tv_usec; } on 64-bit Linux.
        Span<byte> timeval = stackalloc byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(timeval, (long)Wake.TotalSeconds);
        BinaryPrimitives.WriteInt64LittleEndian(timeval[8..], 0);
        fixed (byte* a = address)
        fixed (byte* t = timeval)
        {
            if (bind(handle, a, SockaddrNlSize) != 0 || setsockopt(handle, SOL_SOCKET, SO_RCVTIMEO, t, timeval.Length) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                handle.Dispose();
                throw new IOException($"subscribe to address changes: {Errno.Name(errno)}");
            }
        }
        return handle;
    }

    /// <summary>Every address of every interface with its prefix length, as getifaddrs reports them now.</summary>
    private static LocalAddressSet Read()
    {
        var addresses = new List<(IPAddress, int)>();
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
            {
                addresses.Add((unicast.Address, unicast.PrefixLength));
            }
        }
        return new LocalAddressSet(addresses);
    }
}
