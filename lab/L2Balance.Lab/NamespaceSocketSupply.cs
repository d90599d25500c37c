using System.Net.Sockets;
using System.Threading.Channels;
using L2Balance.Common.Linux;

namespace L2Balance.Lab;

/// <summary>
/// A steady supply of fresh sockets created inside a lab host's namespace, for load generators:
/// one dedicated thread enters the namespace once (setns) and keeps a bounded queue filled, so a
/// connect-rate loop does not pay a thread per socket as <see cref="LabHost.OpenSocket"/> does.
/// </summary>
public sealed class NamespaceSocketSupply : IDisposable
{
    private readonly Channel<Socket> _queue;
    private readonly CancellationTokenSource _stop = new();
    private readonly NamespaceThread _thread;
    private readonly Task<bool> _producer;

    public NamespaceSocketSupply(LabHost host, AddressFamily family, SocketType type, ProtocolType protocol, int capacity = 256)
    {
        ArgumentNullException.ThrowIfNull(host);
        _queue = Channel.CreateBounded<Socket>(new BoundedChannelOptions(capacity) { SingleWriter = true });
        _thread = new NamespaceThread(host.NamespacePath, "lab-socket-supply");
        var token = _stop.Token;
        // The producer holds the namespace thread until Dispose: it is this supply's only work item.
        _producer = _thread.InvokeAsync(() =>
        {
            try
            {
                while (!token.IsCancellationRequested)
                {
                    var socket = new Socket(family, type, protocol);
                    if (!_queue.Writer.WriteAsync(socket, token).AsTask().Wait(Timeout.Infinite, token))
                    {
                        socket.Dispose();
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // Stopped.
            }

            return true;
        });
    }

    /// <summary>The next socket (the caller owns it).</summary>
    public ValueTask<Socket> TakeAsync(CancellationToken cancellationToken = default) => _queue.Reader.ReadAsync(cancellationToken);

    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            _producer.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // The producer ended with the cancellation.
        }

        _thread.Dispose();
        while (_queue.Reader.TryRead(out var socket))
        {
            socket.Dispose();
        }

        _stop.Dispose();
    }
}
