using System.Globalization;
using System.Net.Sockets;
using System.Text;
using L2Balance.Common.Linux;

namespace L2Balance.Proxy.Workers;

/// <summary>
/// <c>--workers N</c> under systemd: the supervisor is the service's main process, but only the
/// workers listen. Each worker gets a private notify socket of the supervisor's as its
/// <c>NOTIFY_SOCKET</c> and reports <c>READY=1</c> with its index there once it listens; the
/// supervisor tells systemd READY=1 when every worker has (docs/design.md#systemd). Messages are
/// size-checked and anything but a valid index is ignored (docs/conventions.md §16).
/// </summary>
internal sealed class WorkerReadiness : IDisposable
{
    /// <summary>The variable a worker's READY=1 names its index with.</summary>
    public const string WorkerVariable = "WORKER";

    /// <summary>Larger datagrams are not a worker's: dropped unread.</summary>
    private const int MaxMessage = 256;

    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly bool[] _ready;
    private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();

    public WorkerReadiness(int count)
    {
        _ready = new bool[count];
        Address = $"@l2proxy-workers-{Environment.ProcessId}-{Guid.NewGuid():N}";
        _socket.Bind(new UnixDomainSocketEndPoint("\0" + Address[1..]));
        _ = ReceiveAsync();
    }

    /// <summary>The workers' <c>NOTIFY_SOCKET</c> (abstract, named for this supervisor).</summary>
    public string Address { get; }

    /// <summary>Completes once every worker has reported READY=1 (restarts after that change nothing).</summary>
    public Task AllReady => _all.Task;

    /// <summary>The index a worker's message reports ready, or null when it is not a well-formed READY=1 of a worker in range.</summary>
    public static int? ReadyWorker(ReadOnlySpan<byte> message, int count)
    {
        if (message.Length > MaxMessage)
        {
            return null;
        }
        var ready = false;
        int? index = null;
        foreach (var line in Encoding.UTF8.GetString(message).Split('\n'))
        {
            ready |= line == "READY=1";
            if (line.StartsWith(WorkerVariable + "=", StringComparison.Ordinal)
                && int.TryParse(line.AsSpan(WorkerVariable.Length + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < count)
            {
                index = i;
            }
        }
        return ready ? index : null;
    }

    /// <summary>In a worker: tells the supervisor this worker listens (nothing without a notify socket).</summary>
    public static void ReportReady(int index)
    {
        using var notify = SystemdNotify.FromEnvironment();
        notify?.Send(string.Create(CultureInfo.InvariantCulture, $"READY=1\n{WorkerVariable}={index}"));
    }

    private async Task ReceiveAsync()
    {
        var buffer = new byte[MaxMessage + 1];
        try
        {
            while (!_all.Task.IsCompleted)
            {
                var n = await _socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token).ConfigureAwait(false);
                if (ReadyWorker(buffer.AsSpan(0, n), _ready.Length) is { } i)
                {
                    _ready[i] = true;
                    if (Array.TrueForAll(_ready, r => r))
                    {
                        _all.TrySetResult();
                    }
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped before every worker listened: the supervisor stops, nothing to report.
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _stop.Dispose();
        _socket.Dispose();
    }
}
