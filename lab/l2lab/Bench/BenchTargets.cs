using System.Net;
using System.Net.Sockets;
using L2Balance.Lab;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// The benchmark's target servers, in this process on sockets that live in the target namespace:
/// a TCP sink that counts bytes, two request/response servers (one closes first, one waits for the
/// client's close), a hold server for idle sessions and a UDP echo. C#, not python: they must not
/// be the bottleneck at 10+ Gbit/s and thousands of connections per second.
/// </summary>
internal sealed class BenchTargets : IDisposable
{
    public const int SinkPort = 7200;
    public const int TargetClosesPort = 7201;
    public const int ClientClosesPort = 7202;
    public const int UdpEchoPort = 7203;

    /// <summary>Size of the request and of the response of one CONNECT-rate exchange.</summary>
    public const int ExchangeBytes = 32;

    private readonly List<Socket> _listeners = [];
    private readonly CancellationTokenSource _stop = new();
    private long _sinkBytes;

    private BenchTargets()
    {
    }

    /// <summary>Bytes the sink has received so far (all connections).</summary>
    public long SinkBytes => Interlocked.Read(ref _sinkBytes);

    public static BenchTargets Start(LabHost host)
    {
        var targets = new BenchTargets();
        targets.Listen(host, SinkPort, targets.SinkAsync);
        targets.Listen(host, TargetClosesPort, c => targets.ExchangeAsync(c, targetCloses: true));
        targets.Listen(host, ClientClosesPort, c => targets.ExchangeAsync(c, targetCloses: false));
        var udp = host.OpenSocket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(IPAddress.Any, UdpEchoPort));
        targets._listeners.Add(udp);
        _ = targets.UdpEchoAsync(udp);
        return targets;
    }

    private void Listen(LabHost host, int port, Func<Socket, Task> serve)
    {
        var listener = host.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(new IPEndPoint(IPAddress.Any, port));
        listener.Listen(4096);
        _listeners.Add(listener);
        // Two accept loops per port: accepting is on the critical path of the CONNECT rate.
        for (int i = 0; i < 2; i++)
        {
            _ = AcceptLoopAsync(listener, serve);
        }
    }

    private async Task AcceptLoopAsync(Socket listener, Func<Socket, Task> serve)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            client.NoDelay = true;
            _ = serve(client);
        }
    }

    private async Task SinkAsync(Socket client)
    {
        using (client)
        {
            var buffer = GC.AllocateUninitializedArray<byte>(256 * 1024);
            try
            {
                while (true)
                {
                    int n = await client.ReceiveAsync(buffer, SocketFlags.None, _stop.Token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        return;
                    }

                    Interlocked.Add(ref _sinkBytes, n);
                }
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }

    private async Task ExchangeAsync(Socket client, bool targetCloses)
    {
        using (client)
        {
            var buffer = new byte[ExchangeBytes];
            try
            {
                int read = 0;
                while (read < ExchangeBytes)
                {
                    int n = await client.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, _stop.Token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        return;
                    }

                    read += n;
                }

                await client.SendAsync(buffer, SocketFlags.None, _stop.Token).ConfigureAwait(false);
                if (!targetCloses)
                {
                    // Wait for the client's FIN: the client side closes first.
                    while (await client.ReceiveAsync(buffer, SocketFlags.None, _stop.Token).ConfigureAwait(false) > 0)
                    {
                    }
                }
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }

    private async Task UdpEchoAsync(Socket socket)
    {
        var buffer = new byte[65536];
        EndPoint any = new IPEndPoint(IPAddress.Any, 0);
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var r = await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, _stop.Token).ConfigureAwait(false);
                await socket.SendToAsync(buffer.AsMemory(0, r.ReceivedBytes), SocketFlags.None, r.RemoteEndPoint, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        foreach (var listener in _listeners)
        {
            listener.Dispose();
        }

        _stop.Dispose();
    }
}
