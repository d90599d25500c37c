using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// The ends of bench-migrate's sessions on two threads instead of two tasks per stream: one writer
/// thread sends every stream's chunk on its schedule, one reader thread waits on all streams with
/// epoll and checks what arrives. Each chunk's one-way delay is taken twice: to its arrival at the
/// end's kernel (SO_TIMESTAMPNS of the segment, what the move causes) and to its read here (that plus
/// this process's own scheduling, which shares the lab's cores with the nodes). The ends' sockets are
/// set up with synchronous calls only, so .NET's own epoll thread never watches them too.
/// </summary>
internal sealed partial class EndPump : IDisposable
{
    private readonly List<PumpStream> _streams = [];
    private readonly int _epoll;
    private readonly TimeSpan _interval;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<double> _readLags = [];
    private Thread? _writer;
    private Thread? _reader;
    private int _open;
    private bool _recordLags;
    private volatile bool _disposed;

    public EndPump(TimeSpan interval)
    {
        _interval = interval;
        _epoll = epoll_create1(EpollCloexec);
        if (_epoll < 0)
        {
            throw new InvalidOperationException($"epoll_create1: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>Every stream has reached its end of file (or failed) on the reading side.</summary>
    public TaskCompletionSource AllEnded { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A stream from <paramref name="writer"/> to <paramref name="reader"/>; call before <see cref="Start"/>.</summary>
    public PumpStream Add(Socket writer, Socket reader, int seed, int chunk)
    {
        var stream = new PumpStream(writer, reader, seed, chunk, _streams.Count);
        // SOL_SOCKET, SO_TIMESTAMPNS (asm-generic/socket.h): each read carries the kernel's receive time of its last segment.
        reader.SetRawSocketOption(SolSocket, SoTimestampNs, BitConverter.GetBytes(1));
        var ev = new EpollEvent { Events = EpollIn | EpollRdHup, Data = (ulong)stream.Index };
        if (epoll_ctl(_epoll, EpollCtlAdd, (int)reader.Handle, ref ev) != 0)
        {
            throw new InvalidOperationException($"epoll_ctl: errno {Marshal.GetLastPInvokeError()}");
        }

        _streams.Add(stream);
        return stream;
    }

    public void Start()
    {
        _open = _streams.Count;
        _writer = new Thread(WriteLoop) { IsBackground = true, Name = "bench-writer" };
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = "bench-reader" };
        _reader.Start();
        _writer.Start();
    }

    /// <summary>From now on, how late each read came after the kernel's receipt (ms) is kept.</summary>
    public void RecordReadLags(bool on)
    {
        lock (_readLags)
        {
            _recordLags = on;
        }
    }

    public List<double> ReadLags()
    {
        lock (_readLags)
        {
            return [.. _readLags];
        }
    }

    /// <summary>The writers finish their chunk and shut down their sending side; the readers read to the end.</summary>
    public void Stop() => _stop.Cancel();

    private void WriteLoop()
    {
        var intervalTicks = (long)(_interval.TotalSeconds * Stopwatch.Frequency);
        var due = new PriorityQueue<PumpStream, long>();
        var now = Stopwatch.GetTimestamp();
        foreach (var s in _streams)
        {
            // Spread the streams' writes over the interval rather than all on one tick.
            due.Enqueue(s, now + (long)(Random.Shared.NextDouble() * intervalTicks));
        }

        while (!_stop.IsCancellationRequested)
        {
            now = Stopwatch.GetTimestamp();
            while (due.TryPeek(out var s, out var at) && at <= now)
            {
                due.Dequeue();
                s.WriteNext();
                var next = at + intervalTicks;
                due.Enqueue(s, next > now ? next : now + intervalTicks);
            }

            if (due.TryPeek(out _, out var first))
            {
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), first);
                if (wait > TimeSpan.Zero)
                {
                    Thread.Sleep(wait < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : wait);
                }
            }
        }

        // Bounded: a chunk a full send buffer holds back gets 5 s to go out.
        var giveUp = Stopwatch.GetTimestamp() + (5 * Stopwatch.Frequency);
        foreach (var s in _streams)
        {
            while (!s.FinishChunk() && Stopwatch.GetTimestamp() < giveUp)
            {
                Thread.Sleep(1);
            }

            s.ShutdownSend();
        }
    }

    private unsafe void ReadLoop()
    {
        const int MaxEvents = 256;
        var events = new EpollEvent[MaxEvents];
        var buffer = new byte[16 * 1024];
        var control = new byte[64];
        while (Volatile.Read(ref _open) > 0 && !_disposed)
        {
            int n;
            fixed (EpollEvent* e = events)
            {
                n = epoll_wait(_epoll, e, MaxEvents, 100);
            }

            if (n < 0)
            {
                if (Marshal.GetLastPInvokeError() == Eintr || _disposed)
                {
                    continue;
                }

                throw new InvalidOperationException($"epoll_wait: errno {Marshal.GetLastPInvokeError()}");
            }

            for (var i = 0; i < n; i++)
            {
                var stream = _streams[(int)events[i].Data];
                var (read, kernelTicks, errno) = Receive(stream.ReaderFd, buffer, control);
                var readTicks = DateTime.UtcNow.Ticks;
                if (read > 0)
                {
                    var at = kernelTicks ?? readTicks;
                    stream.Consume(buffer.AsSpan(0, read), at, readTicks);
                    if (kernelTicks is { } k)
                    {
                        lock (_readLags)
                        {
                            if (_recordLags)
                            {
                                _readLags.Add((readTicks - k) / (double)TimeSpan.TicksPerMillisecond);
                            }
                        }
                    }

                    continue;
                }

                if (read < 0 && errno is Eagain or Eintr)
                {
                    continue;
                }

                if (read < 0)
                {
                    stream.Fail($"read: errno {errno}");
                }

                var ev = default(EpollEvent);
                _ = epoll_ctl(_epoll, EpollCtlDel, stream.ReaderFd, ref ev);
                stream.ReadEnded();
                if (Interlocked.Decrement(ref _open) == 0)
                {
                    AllEnded.TrySetResult();
                }
            }
        }
    }

    /// <summary>recvmsg(2) of up to the buffer with the SCM_TIMESTAMPNS control message: bytes (0 at EOF, -1 on error), kernel time in UTC ticks, errno.</summary>
    private static unsafe (int Read, long? KernelTicks, int Errno) Receive(int fd, byte[] buffer, byte[] control)
    {
        fixed (byte* data = buffer)
        fixed (byte* cmsg = control)
        {
            var iov = new IoVec { Base = data, Length = (nuint)buffer.Length };
            var msg = new MsgHdr { Iov = &iov, IovLen = 1, Control = cmsg, ControlLen = (nuint)control.Length };
            var n = (int)recvmsg(fd, &msg, MsgDontWait);
            if (n < 0)
            {
                return (-1, null, Marshal.GetLastPInvokeError());
            }

            long? ticks = null;
            // struct cmsghdr { size_t len; int level; int type; } then struct timespec { long sec; long nsec; }.
            if ((int)msg.ControlLen >= 16 + 16 && *(int*)(cmsg + 8) == SolSocket && *(int*)(cmsg + 12) == SoTimestampNs)
            {
                var sec = *(long*)(cmsg + 16);
                var nsec = *(long*)(cmsg + 24);
                ticks = DateTime.UnixEpoch.Ticks + (sec * TimeSpan.TicksPerSecond) + (nsec / 100);
            }

            return (n, ticks, 0);
        }
    }

    /// <summary>Stops both threads (the reader within its 100 ms wait, the writer within its 5 s bound) before the epoll descriptor closes.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _stop.Cancel();
        _disposed = true;
        _reader?.Join(TimeSpan.FromSeconds(2));
        _writer?.Join(TimeSpan.FromSeconds(6));
        _ = close(_epoll);
        _stop.Dispose();
    }

    private const int EpollCloexec = 0x80000;
    private const int EpollCtlAdd = 1;
    private const int EpollCtlDel = 2;
    private const uint EpollIn = 0x001;
    private const uint EpollRdHup = 0x2000;
    private const int SolSocket = 1;
    private const int SoTimestampNs = 35;
    private const int MsgDontWait = 0x40;
    private const int MsgNoSignal = 0x4000;
    private const int Eintr = 4;
    private const int Eagain = 11;

    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    private struct EpollEvent
    {
        public uint Events;
        public ulong Data;
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct MsgHdr
    {
        public void* Name;
        public uint NameLen;
        public IoVec* Iov;
        public nuint IovLen;
        public void* Control;
        public nuint ControlLen;
        public int Flags;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_ctl(int epfd, int op, int fd, ref EpollEvent ev);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int epoll_wait(int epfd, EpollEvent* events, int maxevents, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint recvmsg(int fd, MsgHdr* msg, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint send(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    /// <summary>
    /// One direction: chunks of [u32 index][i64 send time, UTC ticks][pattern of the stream's positions]; the
    /// reader checks index and pattern (a lost or duplicated byte shifts every later chunk) and the delays.
    /// </summary>
    internal sealed class PumpStream(Socket writer, Socket reader, int seed, int chunk, int index)
    {
        private const int Header = 12;
        private readonly int _chunk = Math.Max(chunk, Header + 1);
        private readonly byte[] _out = new byte[Math.Max(chunk, Header + 1)];
        private readonly byte[] _pending = new byte[Math.Max(chunk, Header + 1)];
        private int _outSent;
        private bool _outBusy;
        private uint _nextIndex;
        private int _filled;
        private uint _expected;
        private long _lastArrival;
        private long _sent;
        private long _received;

        public int Index => index;

        public int ReaderFd { get; } = (int)reader.Handle;

        public TaskCompletionSource Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long Sent => Volatile.Read(ref _sent);

        public long Received => Volatile.Read(ref _received);

        public bool Mismatch { get; private set; }

        public string? Error { get; private set; }

        /// <summary>The longest one-way delay of a chunk, to the kernel's receipt at the reading end (ms).</summary>
        public double WorstDelay { get; private set; }

        /// <summary>The same to the read here (this process's scheduling included).</summary>
        public double WorstReadDelay { get; private set; }

        public double WorstGap { get; private set; }

        public void ResetWorst()
        {
            WorstDelay = 0;
            WorstReadDelay = 0;
            WorstGap = 0;
        }

        public void Fail(string error) => Error ??= error;

        public void ReadEnded() => Ended.TrySetResult();

        private static byte At(int seed, long position) => (byte)((((ulong)position + (ulong)seed) * 0x9E3779B97F4A7C15UL) >> 56);

        /// <summary>Sends the rest of a chunk a full buffer held back, or else the next chunk.</summary>
        public void WriteNext()
        {
            if (_outBusy)
            {
                FinishChunk();
            }

            if (Error is not null || _outBusy)
            {
                return;
            }

            BitConverter.TryWriteBytes(_out.AsSpan(0, 4), _nextIndex++);
            var position = Sent;
            for (var i = Header; i < _chunk; i++)
            {
                _out[i] = At(seed, position + i);
            }

            BitConverter.TryWriteBytes(_out.AsSpan(4, 8), DateTime.UtcNow.Ticks);
            _outBusy = true;
            _outSent = 0;
            FinishChunk();
        }

        /// <summary>Sends what is left of the current chunk; true once none is left.</summary>
        public unsafe bool FinishChunk()
        {
            while (_outBusy && Error is null)
            {
                nint n;
                fixed (byte* b = _out)
                {
                    n = send((int)writer.Handle, b + _outSent, (nuint)(_chunk - _outSent), MsgDontWait | MsgNoSignal);
                }

                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno is Eagain or Eintr)
                    {
                        return false;
                    }

                    Error = $"write: errno {errno}";
                    return true;
                }

                _outSent += (int)n;
                if (_outSent == _chunk)
                {
                    _outBusy = false;
                    Volatile.Write(ref _sent, _sent + _chunk);
                }
            }

            return true;
        }

        public void ShutdownSend()
        {
            try
            {
                writer.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException e)
            {
                Error ??= $"shutdown: {e.SocketErrorCode}";
            }
        }

        public void Consume(ReadOnlySpan<byte> data, long kernelTicks, long readTicks)
        {
            var bytes = data.Length;
            if (_lastArrival != 0)
            {
                WorstGap = Math.Max(WorstGap, (kernelTicks - _lastArrival) / (double)TimeSpan.TicksPerMillisecond);
            }

            _lastArrival = kernelTicks;
            while (data.Length > 0)
            {
                var take = Math.Min(data.Length, _chunk - _filled);
                data[..take].CopyTo(_pending.AsSpan(_filled));
                _filled += take;
                data = data[take..];
                if (_filled == _chunk)
                {
                    Check(_expected++, kernelTicks, readTicks);
                    _filled = 0;
                }
            }

            Volatile.Write(ref _received, _received + bytes);
        }

        private void Check(uint expected, long kernelTicks, long readTicks)
        {
            var position = (long)expected * _chunk;
            if (BitConverter.ToUInt32(_pending, 0) != expected)
            {
                Mismatch = true;
                return;
            }

            for (var i = Header; i < _chunk && !Mismatch; i++)
            {
                Mismatch = _pending[i] != At(seed, position + i);
            }

            var stamp = BitConverter.ToInt64(_pending, 4);
            WorstDelay = Math.Max(WorstDelay, (kernelTicks - stamp) / (double)TimeSpan.TicksPerMillisecond);
            WorstReadDelay = Math.Max(WorstReadDelay, (readTicks - stamp) / (double)TimeSpan.TicksPerMillisecond);
        }
    }
}
