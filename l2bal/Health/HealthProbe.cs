using System.Diagnostics;
using System.Net.Sockets;
using L2Balance.Balancer.Config;

namespace L2Balance.Balancer.Health;

/// <summary>
/// Runs one probe of the local service: a real SOCKS5 greeting (RFC 1928 section 3), a TCP
/// connect, or a command. Returns null on success, else the reason. Bounded by a timeout.
/// </summary>
internal static class HealthProbe
{
    public static async Task<string?> RunAsync(HealthProbeSpec spec, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            return spec.Kind switch
            {
                HealthProbeKind.Socks5 => await Socks5Async(spec, cts.Token).ConfigureAwait(false),
                HealthProbeKind.Tcp => await TcpAsync(spec, cts.Token).ConfigureAwait(false),
                HealthProbeKind.Exec => await ExecAsync(spec, cts.Token).ConfigureAwait(false),
                _ => null,
            };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return $"no answer within {timeout.TotalMilliseconds:0} ms";
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode.ToString();
        }
    }

    private static async Task<string?> TcpAsync(HealthProbeSpec spec, CancellationToken cancellationToken)
    {
        using var socket = new Socket(spec.EndPoint!.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(spec.EndPoint, cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async Task<string?> Socks5Async(HealthProbeSpec spec, CancellationToken cancellationToken)
    {
        using var socket = new Socket(spec.EndPoint!.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(spec.EndPoint, cancellationToken).ConfigureAwait(false);
        // Greeting: version 5, two methods: no authentication, username/password.
        await socket.SendAsync(new byte[] { 5, 2, 0, 2 }, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        var reply = new byte[2];
        var read = 0;
        while (read < 2)
        {
            var n = await socket.ReceiveAsync(reply.AsMemory(read), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return "the SOCKS server closed the connection during the greeting";
            }
            read += n;
        }
        return reply[0] == 5 && reply[1] is 0 or 2 ? null : $"unexpected SOCKS5 method selection {reply[0]:x2} {reply[1]:x2}";
    }

    private static async Task<string?> ExecAsync(HealthProbeSpec spec, CancellationToken cancellationToken)
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
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return process.ExitCode == 0 ? null : $"command exited with {process.ExitCode}";
    }
}
