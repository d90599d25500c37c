using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Relay;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Proxy.Tests.Relay;

/// <summary>The UDP poller's thread survives a handler that throws (issue 13): it drops that registration and serves the others.</summary>
public sealed class UdpPollerTests
{
    [Fact]
    public async Task OnReadable_HandlerThrows_PollerTellsItAndKeepsServingOthers()
    {
        using var failing = Bound();
        using var healthy = Bound();
        using var sender = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        var thrower = new Handler(@throw: true, failing);
        var counter = new Handler(@throw: false, healthy);
        var failingKey = UdpPoller.Shared.Register(failing, thrower);
        var healthyKey = UdpPoller.Shared.Register(healthy, counter);
        try
        {
            await sender.SendToAsync(new byte[8], SocketFlags.None, failing.LocalEndPoint!);
            var failure = await thrower.Failed.Task.WithTimeout(TimeSpan.FromSeconds(10));
            Assert.IsType<InvalidOperationException>(failure);

            await sender.SendToAsync(new byte[8], SocketFlags.None, healthy.LocalEndPoint!);
            await counter.Read.Task.WithTimeout(TimeSpan.FromSeconds(10));

            // The failed registration was dropped: a second datagram to it is not handed to it again.
            await sender.SendToAsync(new byte[8], SocketFlags.None, failing.LocalEndPoint!);
            await Task.Delay(200);
            Assert.Equal(1, thrower.Calls);
        }
        finally
        {
            UdpPoller.Shared.Unregister(failing, failingKey);
            UdpPoller.Shared.Unregister(healthy, healthyKey);
        }
    }

    private static Socket Bound()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { Blocking = false };
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return socket;
    }

    private sealed class Handler(bool @throw, Socket socket) : IUdpReadable
    {
        private int _calls;

        public TaskCompletionSource<Exception> Failed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Read { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Calls => Volatile.Read(ref _calls);

        public void OnReadable(byte[] buffer)
        {
            Interlocked.Increment(ref _calls);
            if (@throw)
            {
                throw new InvalidOperationException("a handler bug");
            }
            try
            {
                // Drain, as a real handler does: the poller is level-triggered.
                while (socket.Receive(buffer) > 0)
                {
                }
            }
            catch (SocketException)
            {
            }
            Read.TrySetResult();
        }

        public void OnFailed(Exception exception) => Failed.TrySetResult(exception);
    }
}
