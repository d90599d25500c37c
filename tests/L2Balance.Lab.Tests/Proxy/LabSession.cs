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
    private readonly TaskCompletionSource _bothEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
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

    /// <summary>
    /// Whether both directions end at EOF (not paused) within <paramref name="wait"/>: the relay passed
    /// both half-closes and closed its legs. Awaited, not read: the far end sees the second half-close
    /// before the pump that sent it counts it.
    /// </summary>
    public async Task<bool> EndsWithinAsync(TimeSpan wait)
    {
        try
        {
            await _bothEnded.Task.WaitAsync(wait);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

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
                        _bothEnded.SetResult();
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
        Up = new StreamCheck(client, target, seed, pace, stop, "up");
        Down = new StreamCheck(target, client, seed + 1, pace, stop, "down") { Other = Up };
        Up.Other = Down;
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
    /// <summary>Bytes kept from the first mismatch on, for <see cref="Classify"/>.</summary>
    private const int KeptAfterMismatch = 64 * 1024;

    /// <summary>Every stream of this process by seed: a wrong byte may be another session's (seeds are unique within a test).</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, StreamCheck> s_streams = new();

    private readonly int _seed;
    private readonly string _name;
    private readonly List<byte> _afterMismatch = [];
    private string? _classified;

    public StreamCheck(Socket writer, Socket reader, int seed, StreamPace pace, CancellationToken stop, string name = "stream")
    {
        _seed = seed;
        _name = name;
        s_streams[seed] = this;
        Completion = Task.WhenAll(Task.Run(() => WriteAsync(writer, pace, stop), CancellationToken.None), Task.Run(() => ReadAsync(reader), CancellationToken.None));
    }

    public Task Completion { get; }

    public long Sent { get; private set; }

    public long Received { get; private set; }

    /// <summary>The position of the first wrong byte, or -1.</summary>
    public long Mismatch { get; private set; } = -1;

    public TimeSpan LongestGap { get; private set; }

    /// <summary>The position of the first byte that arrived after <see cref="LongestGap"/> (the move's pause, usually).</summary>
    public long LongestGapAt { get; private set; } = -1;

    /// <summary>Starts <see cref="LongestGap"/> afresh: the pause of a move, not the gaps of the session's start.</summary>
    public void ResetLongestGap()
    {
        LongestGap = TimeSpan.Zero;
        LongestGapAt = -1;
    }

    public string? Error { get; private set; }

    public bool Intact => Error is null && Mismatch < 0 && Sent > 0 && Received == Sent;

    public override string ToString() => $"sent {Sent}, received {Received}, first mismatch {Mismatch}, longest gap {LongestGap.TotalMilliseconds:F1} ms at {LongestGapAt}, error {Error ?? "none"}"
        + (Mismatch < 0 ? string.Empty : $"; from the mismatch: {Classify()}");

    /// <summary>
    /// The byte at <paramref name="position"/> of stream <paramref name="seed"/>: a hash of both (splitmix64), so a shifted
    /// byte differs and every stream differs from every other (a wrong byte can be traced to its stream and position).
    /// </summary>
    private static byte At(int seed, long position)
    {
        var z = ((ulong)(uint)seed << 40) ^ (ulong)position;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (byte)((z ^ (z >> 31)) >> 56);
    }

    /// <summary>
    /// What arrived from the first mismatch on, as runs "[position, +length) origin": in place, this stream shifted
    /// (a later part: positive shift; bytes delivered already: negative), the other direction, another session's stream, or unknown.
    /// </summary>
    public string Classify()
    {
        if (_classified is not null)
        {
            return _classified;
        }
        byte[] kept;
        lock (_afterMismatch)
        {
            kept = [.. _afterMismatch];
        }
        var runs = new List<string>();
        var i = 0;
        while (i < kept.Length && runs.Count < 8)
        {
            var at = Mismatch + i;
            var window = kept.AsSpan(i, Math.Min(16, kept.Length - i)).ToArray();
            (StreamCheck Stream, long Origin)? source = Matches(this, at, window) ? (this, at) : Find(this, window);
            if (Other is { } other && source is null)
            {
                source = Find(other, window);
            }
            // Every other stream only for the first runs: a search of them all takes a second.
            source ??= runs.Count >= 3 ? null : s_streams.Values.Where(s => s != this && s != Other).Select(s => Find(s, window)).FirstOrDefault(f => f is not null);
            if (source is not { } found)
            {
                runs.Add($"[{at}, +{window.Length}) unknown");
                i += window.Length;
                continue;
            }
            var (stream, origin) = found;
            var length = 0;
            while (i + length < kept.Length && kept[i + length] == At(stream._seed, origin + length))
            {
                length++;
            }
            var what = stream == this ? (origin == at ? "in place" : $"this stream@{origin} (shift {origin - at:+#;-#;0})")
                : $"{stream._name} seed {stream._seed}@{origin}" + (stream == Other ? " (the other direction)" : " (another session)");
            runs.Add($"[{at}, +{length}) {what}");
            i += Math.Max(length, 1);
        }
        var more = i < kept.Length ? $" ..." : kept.Length == KeptAfterMismatch ? " (kept bytes end)" : string.Empty;
        var classified = string.Join("; ", runs) + more;
        // Kept once the reader is done: an earlier call sees only what arrived so far.
        return Completion.IsCompleted ? _classified = classified : classified;
    }

    /// <summary>The other direction of this session.</summary>
    public StreamCheck? Other { get; set; }

    private static bool Matches(StreamCheck stream, long origin, ReadOnlySpan<byte> window)
    {
        for (var k = 0; k < window.Length; k++)
        {
            if (window[k] != At(stream._seed, origin + k))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Where in <paramref name="stream"/> (up to what its writer sent, and a little more) <paramref name="window"/> occurs.</summary>
    private static (StreamCheck, long)? Find(StreamCheck stream, ReadOnlySpan<byte> window)
    {
        var end = Math.Max(stream.Sent, stream.Received) + (64 * 1024);
        for (long q = 0; q < end; q++)
        {
            if (At(stream._seed, q) == window[0] && Matches(stream, q, window))
            {
                return (stream, q);
            }
        }
        return null;
    }

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
                if (gap > LongestGap)
                {
                    LongestGap = gap;
                    LongestGapAt = Received;
                }
                last = now;
                for (int i = 0; i < n && Mismatch < 0; i++)
                {
                    if (buffer[i] != At(_seed, Received + i))
                    {
                        Mismatch = Received + i;
                    }
                }

                if (Mismatch >= 0 && _afterMismatch.Count < KeptAfterMismatch)
                {
                    var from = (int)Math.Max(0, Mismatch - Received);
                    lock (_afterMismatch)
                    {
                        _afterMismatch.AddRange(buffer.AsSpan(from, Math.Min(n - from, KeptAfterMismatch - _afterMismatch.Count)));
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
