using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// A relay of two TCP legs in this process that can stop between two reads, so its sockets can be
/// frozen: each direction reads, then writes all it read before the next read, so a stopped relay holds
/// no bytes (the held buffers are what a restored relay writes first).
/// </summary>
internal sealed class LabRelay : IDisposable
{
    private CancellationTokenSource _pause = new();
    private Task _toTarget = Task.CompletedTask;
    private Task _toClient = Task.CompletedTask;
    private int _ended;

    public LabRelay(Socket clientLeg, Socket targetLeg, byte[] heldToTarget, byte[] heldToClient)
    {
        ClientLeg = clientLeg;
        TargetLeg = targetLeg;
        HeldToTarget = heldToTarget;
        HeldToClient = heldToClient;
        Resume();
    }

    public Socket ClientLeg { get; }

    public Socket TargetLeg { get; }

    public byte[] HeldToTarget { get; private set; }

    public byte[] HeldToClient { get; private set; }

    /// <summary>Both directions ended at EOF (not paused): the relay closed its legs.</summary>
    public bool Ended => Volatile.Read(ref _ended) == 2;

    public void Resume()
    {
        _pause = new CancellationTokenSource();
        _toTarget = PumpAsync(ClientLeg, TargetLeg, HeldToTarget, _pause.Token);
        _toClient = PumpAsync(TargetLeg, ClientLeg, HeldToClient, _pause.Token);
        HeldToTarget = [];
        HeldToClient = [];
    }

    /// <summary>Stops both directions between a write and the next read.</summary>
    public async Task PauseAsync()
    {
        await _pause.CancelAsync();
        await Task.WhenAll(_toTarget, _toClient);
        _pause.Dispose();
    }

    public void Dispose()
    {
        ClientLeg.Dispose();
        TargetLeg.Dispose();
    }

    private async Task PumpAsync(Socket from, Socket to, byte[] held, CancellationToken pause)
    {
        await Task.Yield();
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            await SendAllAsync(to, held);
            while (true)
            {
                int n;
                try
                {
                    n = await from.ReceiveAsync(buffer, SocketFlags.None, pause);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                if (n == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    if (Interlocked.Increment(ref _ended) == 2)
                    {
                        Dispose();
                    }

                    return;
                }

                await SendAllAsync(to, buffer.AsMemory(0, n));
            }
        }
        catch (SocketException)
        {
            // A leg failed: the session's checks see the cut.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task SendAllAsync(Socket to, ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            bytes = bytes[await to.SendAsync(bytes, SocketFlags.None)..];
        }
    }
}

/// <summary>
/// A session: its client and target ends write a position-keyed byte stream each way at a pace, and
/// read the other's, checking every byte: once, in order (a lost, duplicated or reordered byte is a
/// mismatch at its position), and measuring the longest pause between two arrivals.
/// </summary>
internal sealed class LabSession : IDisposable
{
    private readonly Socket _client;
    private readonly Socket _target;

    private readonly LabRelay? _relay;

    /// <param name="relay">The relay in this process, or null when a proxy relays.</param>
    public LabSession(Socket client, Socket target, LabRelay? relay, int seed, StreamPace pace, CancellationToken stop)
    {
        _client = client;
        _target = target;
        _relay = relay;
        Up = new StreamCheck(client, target, seed, pace, stop);
        Down = new StreamCheck(target, client, seed + 1, pace, stop);
    }

    public LabRelay Relay => _relay ?? throw new InvalidOperationException("this session is relayed by l2proxy, not in this process");

    /// <summary>The relay on B after a move, or null while the session lives on A.</summary>
    public LabRelay? MovedTo { get; set; }

    /// <summary>Client to target.</summary>
    public StreamCheck Up { get; }

    /// <summary>Target to client.</summary>
    public StreamCheck Down { get; }

    public TimeSpan LongestPause => Up.LongestGap > Down.LongestGap ? Up.LongestGap : Down.LongestGap;

    public void ResetLongestPause()
    {
        Up.ResetLongestGap();
        Down.ResetLongestGap();
    }

    public Task CompletionAsync() => Task.WhenAll(Up.Completion, Down.Completion);

    public string Describe() => $"up: {Up}; down: {Down}";

    /// <summary>Ends the client end with a RST (SO_LINGER 0): the client keeps no TIME_WAIT, so its source port may serve again at once.</summary>
    public void AbortClient()
    {
        _client.LingerState = new LingerOption(true, 0);
        _client.Dispose();
    }

    public void Dispose()
    {
        _client.Dispose();
        _target.Dispose();
        _relay?.Dispose();
        MovedTo?.Dispose();
    }
}

/// <summary>One direction of a session: the writer until stop (then a half-close), the checking reader until EOF.</summary>
internal sealed class StreamCheck
{
    private readonly int _seed;

    public StreamCheck(Socket writer, Socket reader, int seed, StreamPace pace, CancellationToken stop)
    {
        _seed = seed;
        Completion = Task.WhenAll(Task.Run(() => WriteAsync(writer, pace, stop), CancellationToken.None), Task.Run(() => ReadAsync(reader), CancellationToken.None));
    }

    public Task Completion { get; }

    public long Sent { get; private set; }

    public long Received { get; private set; }

    /// <summary>The position of the first wrong byte, or -1.</summary>
    public long Mismatch { get; private set; } = -1;

    public TimeSpan LongestGap { get; private set; }

    /// <summary>Starts <see cref="LongestGap"/> afresh: the pause of a move, not the gaps of the session's start.</summary>
    public void ResetLongestGap() => LongestGap = TimeSpan.Zero;

    public string? Error { get; private set; }

    public bool Intact => Error is null && Mismatch < 0 && Sent > 0 && Received == Sent;

    public override string ToString() => $"sent {Sent}, received {Received}, first mismatch {Mismatch}, longest gap {LongestGap.TotalMilliseconds:F1} ms, error {Error ?? "none"}";

    /// <summary>The byte at <paramref name="position"/> of stream <paramref name="seed"/>: a hash, so a shifted byte differs.</summary>
    private static byte At(int seed, long position) => (byte)((((ulong)position + (ulong)seed) * 0x9E3779B97F4A7C15UL) >> 56);

    private async Task WriteAsync(Socket socket, StreamPace pace, CancellationToken stop)
    {
        var chunk = new byte[pace.Chunk];
        try
        {
            while (!stop.IsCancellationRequested)
            {
                for (int i = 0; i < chunk.Length; i++)
                {
                    chunk[i] = At(_seed, Sent + i);
                }

                int sent = 0;
                while (sent < chunk.Length)
                {
                    sent += await socket.SendAsync(chunk.AsMemory(sent), SocketFlags.None, CancellationToken.None);
                }

                Sent += chunk.Length;
                await Task.Delay(pace.Interval, CancellationToken.None);
            }

            socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException e)
        {
            Error = $"write: {e.SocketErrorCode}";
        }
    }

    private async Task ReadAsync(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        long last = Stopwatch.GetTimestamp();
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None);
                var now = Stopwatch.GetTimestamp();
                if (n == 0)
                {
                    return;
                }

                var gap = Stopwatch.GetElapsedTime(last, now);
                LongestGap = gap > LongestGap ? gap : LongestGap;
                last = now;
                for (int i = 0; i < n && Mismatch < 0; i++)
                {
                    if (buffer[i] != At(_seed, Received + i))
                    {
                        Mismatch = Received + i;
                    }
                }

                Received += n;
            }
        }
        catch (SocketException e)
        {
            Error = $"read: {e.SocketErrorCode}";
        }
    }
}
