using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using L2Balance.Proxy.Config;

namespace L2Balance.Proxy.Diagnostics;

/// <summary>Severity of a log line, as Dante names them.</summary>
public enum LogLevel
{
    Debug,
    Info,
    Warning,
    Error,
}

/// <summary>
/// Writes finished log lines to the configured destinations (Dante <c>logoutput</c> and
/// <c>errorlog</c>) from one background task, so that a slow disk or syslog never blocks a
/// session. Lines beyond the queue's bound are dropped and counted, never waited for.
/// </summary>
public sealed class LogWriter : IAsyncDisposable
{
    private const int QueueBound = 16_384;
    private readonly Channel<(LogLevel Level, string Line)> _queue;
    private readonly ILogSink[] _outputs;
    private readonly ILogSink[] _errorOutputs;
    private readonly Task _pump;
    private long _dropped;

    public LogWriter(IReadOnlyList<LogTarget> output, IReadOnlyList<LogTarget> errorLog)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(errorLog);
        _outputs = output.Select(CreateSink).ToArray();
        _errorOutputs = errorLog.Select(CreateSink).ToArray();
        _queue = Channel.CreateBounded<(LogLevel, string)>(new BoundedChannelOptions(QueueBound)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.DropWrite,
        });
        _pump = Task.Run(PumpAsync);
    }

    /// <summary>Lines dropped because the queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public void Write(LogLevel level, string line)
    {
        if (!_queue.Writer.TryWrite((level, line)))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    private async Task PumpAsync()
    {
        await foreach (var (level, line) in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            foreach (var sink in _outputs)
            {
                sink.Write(level, line);
            }
            if (level >= LogLevel.Warning)
            {
                foreach (var sink in _errorOutputs)
                {
                    sink.Write(level, line);
                }
            }
            if (_queue.Reader.Count == 0)
            {
                foreach (var sink in _outputs)
                {
                    sink.Flush();
                }
                foreach (var sink in _errorOutputs)
                {
                    sink.Flush();
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _pump.ConfigureAwait(false);
        foreach (var sink in _outputs.Concat(_errorOutputs))
        {
            sink.Flush();
            sink.Dispose();
        }
    }

    private static ILogSink CreateSink(LogTarget target) => target.Kind switch
    {
        LogTargetKind.Stderr => new StreamSink(Console.OpenStandardError(), ownsStream: false),
        LogTargetKind.Stdout => new StreamSink(Console.OpenStandardOutput(), ownsStream: false),
        LogTargetKind.File => new StreamSink(
            new FileStream(target.Path!, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 4096),
            ownsStream: true),
        LogTargetKind.Syslog => new SyslogSink(target.Facility),
        _ => throw new ArgumentOutOfRangeException(nameof(target)),
    };

    private interface ILogSink : IDisposable
    {
        public void Write(LogLevel level, string line);

        public void Flush();
    }

    private sealed class StreamSink(Stream stream, bool ownsStream) : ILogSink
    {
        private readonly StreamWriter _writer = new(stream, new UTF8Encoding(false), 8192, leaveOpen: !ownsStream);

        public void Write(LogLevel level, string line)
        {
            try
            {
                _writer.Write(DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture));
                _writer.Write(' ');
                _writer.Write(line);
                _writer.Write('\n');
            }
            catch (IOException)
            {
                // A full disk or a closed stderr must not take the proxy down; the line is lost.
            }
        }

        public void Flush()
        {
            try
            {
                _writer.Flush();
            }
            catch (IOException)
            {
            }
        }

        public void Dispose() => _writer.Dispose();
    }

    /// <summary>RFC 3164 lines to the local syslog daemon over the /dev/log datagram socket.</summary>
    private sealed class SyslogSink : ILogSink
    {
        private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        private readonly int _facility;
        private bool _connected;

        public SyslogSink(string? facility)
        {
            _facility = FacilityCode(facility);
        }

        public void Write(LogLevel level, string line)
        {
            try
            {
                if (!_connected)
                {
                    _socket.Connect(new UnixDomainSocketEndPoint("/dev/log"));
                    _connected = true;
                }
                var severity = level switch
                {
                    LogLevel.Error => 3,
                    LogLevel.Warning => 4,
                    LogLevel.Info => 6,
                    _ => 7,
                };
                _socket.Send(Encoding.UTF8.GetBytes($"<{_facility * 8 + severity}>{line}"));
            }
            catch (SocketException)
            {
                // No syslog daemon listening: the line is lost, as with syslog(3).
                _connected = false;
            }
        }

        public void Flush()
        {
        }

        public void Dispose() => _socket.Dispose();

        private static int FacilityCode(string? facility) => facility?.ToLowerInvariant() switch
        {
            null or "daemon" => 3,
            "user" => 1,
            "auth" => 4,
            "authpriv" => 10,
            "local0" => 16,
            "local1" => 17,
            "local2" => 18,
            "local3" => 19,
            "local4" => 20,
            "local5" => 21,
            "local6" => 22,
            "local7" => 23,
            _ => 3,
        };
    }
}
