using System.Diagnostics;
using System.Net.Sockets;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Diagnostics;

namespace L2Balance.Balancer.Health;

/// <summary>
/// Runs one probe of the local service: a real SOCKS5 greeting (RFC 1928 section 3), a TCP
/// connect, a DNS query (RFC 1035, <see cref="DnsProbeCodec"/>), or a command. Bounded by a timeout.
/// </summary>
/// <remarks>
/// Blocking calls on the daemon's probe thread: a handful of syscalls, where the asynchronous form
/// cost a thread-pool hand-off per probe. SO_SNDTIMEO bounds connect(2) as well as send(2) on
/// Linux, SO_RCVTIMEO bounds the reply. Each probe is a full TCP handshake through the node's own
/// filter, as costly as everything else l2bal does idle (docs/benchmarks.md#health-probe-cost):
/// hence a probe interval of its own (<see cref="Config.BalancerOptions.HealthInterval"/>), and
/// between two full probes of a healthy local service the far cheaper <see cref="ListenCheck"/>.
/// </remarks>
internal static class HealthProbe
{
    public static HealthProbeResult Run(HealthProbeSpec spec, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(spec);
        try
        {
            return spec.Kind switch
            {
                HealthProbeKind.Socks5 => Socks5(spec, timeout),
                HealthProbeKind.Tcp => Tcp(spec, timeout),
                HealthProbeKind.Exec => Exec(spec, timeout),
                HealthProbeKind.Dns => Dns(spec, timeout),
                _ => HealthProbeResult.Pass,
            };
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock or SocketError.InProgress)
        {
            return NoAnswer(timeout);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return new HealthProbeResult(HealthFailure.NothingListens, "connection refused: nothing listens on " + spec.EndPoint);
        }
        catch (SocketException e)
        {
            return new HealthProbeResult(HealthFailure.SocketError, e.SocketErrorCode.ToString());
        }
    }

    private static Socket Connect(HealthProbeSpec spec, TimeSpan timeout)
    {
        var socket = new Socket(spec.EndPoint!.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            var ms = (int)Math.Max(1, Math.Ceiling(timeout.TotalMilliseconds));
            socket.SendTimeout = ms;
            socket.ReceiveTimeout = ms;
            socket.Connect(spec.EndPoint);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static HealthProbeResult NoAnswer(TimeSpan timeout) =>
        new(HealthFailure.Timeout, $"no answer within {timeout.TotalMilliseconds:0} ms");

    private static HealthProbeResult Tcp(HealthProbeSpec spec, TimeSpan timeout)
    {
        using var socket = Connect(spec, timeout);
        return HealthProbeResult.Pass;
    }

    private static HealthProbeResult Socks5(HealthProbeSpec spec, TimeSpan timeout)
    {
        using var socket = Connect(spec, timeout);
        // Greeting: version 5, three methods: no authentication, GSS-API, username/password. Its answer completes
        // the method negotiation, all a probe needs (no request): the close that follows is an orderly FIN
        // (nothing is left unread), which l2proxy logs at debug only (docs/sockd-conf.md#health-probe).
        // GSS-API is offered so that a proxy configured with socksmethod gssapi alone still selects a method.
        socket.Send(Greeting, SocketFlags.None);
        Span<byte> reply = stackalloc byte[2];
        var read = 0;
        while (read < 2)
        {
            var n = socket.Receive(reply[read..], SocketFlags.None);
            if (n == 0)
            {
                return new HealthProbeResult(HealthFailure.Closed, "the SOCKS server closed the connection during the greeting");
            }
            read += n;
        }
        return CheckMethodSelection(reply);
    }

    /// <summary>
    /// One query over UDP on a connected socket: an ICMP port unreachable comes back as
    /// ECONNREFUSED (nothing listens, as a RST for TCP); replies with another id are not ours and
    /// are skipped until the timeout (RFC 5452 section 9.1: a resolver does the same).
    /// </summary>
    private static HealthProbeResult Dns(HealthProbeSpec spec, TimeSpan timeout)
    {
        var name = spec.DnsWireName!;
        using var socket = new Socket(spec.EndPoint!.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Connect(spec.EndPoint);
        var id = (ushort)System.Security.Cryptography.RandomNumberGenerator.GetInt32(0x10000);
        Span<byte> query = stackalloc byte[DnsProbeCodec.QueryLength(name.Length)];
        DnsProbeCodec.WriteQuery(query, id, name);
        socket.Send(query, SocketFlags.None);
        // 4096: the EDNS size most servers use; a larger reply is cut, so its records run past the end (Malformed).
        Span<byte> reply = stackalloc byte[4096];
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (left <= TimeSpan.Zero)
            {
                return NoAnswer(timeout);
            }
            socket.ReceiveTimeout = (int)Math.Max(1, Math.Ceiling(left.TotalMilliseconds));
            var n = socket.Receive(reply, SocketFlags.None);
            var verdict = DnsProbeCodec.ReadReply(reply[..n], id, name, out var rcode);
            switch (verdict)
            {
                case DnsReplyVerdict.Answered:
                    return HealthProbeResult.Pass;
                case DnsReplyVerdict.OtherId:
                    continue;
                case DnsReplyVerdict.ErrorCode:
                    return new HealthProbeResult(HealthFailure.WrongAnswer, $"DNS reply with RCODE {rcode} for {spec.DnsName}");
                default:
                    return new HealthProbeResult(HealthFailure.WrongAnswer, $"DNS reply {verdict} for {spec.DnsName}");
            }
        }
    }

    /// <summary>The probe's SOCKS5 greeting: methods 00 (none), 01 (GSS-API), 02 (username/password).</summary>
    internal static ReadOnlySpan<byte> Greeting => [5, 3, 0, 1, 2];

    /// <summary>Pass when the method selection picks one of the offered methods; X'FF' or anything else is a wrong answer.</summary>
    internal static HealthProbeResult CheckMethodSelection(ReadOnlySpan<byte> reply) =>
        reply.Length == 2 && reply[0] == 5 && reply[1] is 0 or 1 or 2
            ? HealthProbeResult.Pass
            : new HealthProbeResult(HealthFailure.WrongAnswer, $"unexpected SOCKS5 method selection {Convert.ToHexString(reply)}");

    private static HealthProbeResult Exec(HealthProbeSpec spec, TimeSpan timeout)
    {
        using var process = new Process
        {
            StartInfo = new ProcessStartInfo("/bin/sh", ["-c", spec.Command!])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            },
        };
        process.Start();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            return NoAnswer(timeout);
        }
        return process.ExitCode == 0 ? HealthProbeResult.Pass : new HealthProbeResult(HealthFailure.CommandFailed, $"command exited with {process.ExitCode}");
    }
}

/// <summary>
/// One probe's outcome: <see cref="Failure"/> is <see cref="HealthFailure.None"/> when the service
/// answered, else what went wrong, with <see cref="Detail"/> in words for people.
/// <see cref="NothingListens"/>: the connect was refused (a RST to the SYN), so no process listens
/// on the port: the service is gone, which no later probe can contradict until it is restarted.
/// A timeout or a wrong answer is not that certain (a busy proxy answers late).
/// </summary>
internal readonly record struct HealthProbeResult(HealthFailure Failure, string? Detail = null)
{
    public static HealthProbeResult Pass => default;

    public bool Passed => Failure == HealthFailure.None;

    public bool NothingListens => Failure == HealthFailure.NothingListens;
}
