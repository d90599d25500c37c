using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// Results of one CONNECT-rate run: <see cref="Count"/> setups completed; <see cref="WindowRates"/>
/// holds the rate (CONNECT/s) of each full window when the run was asked for windows, else it is empty.
/// </summary>
internal readonly record struct ConnectRateResult(double PerSecond, double P50Ms, double P99Ms, long Failures, double[] WindowRates, long Count)
{
    /// <summary>Median of the window rates (NaN without windows).</summary>
    public double WindowMedian => Median(WindowRates);

    /// <summary>Largest distance of a window's rate from <see cref="WindowMedian"/>, in % of it (NaN without windows).</summary>
    public double MaxDeviationPercent
    {
        get
        {
            var median = WindowMedian;
            return WindowRates.Length == 0 || median <= 0 ? double.NaN : WindowRates.Max(r => Math.Abs(r - median)) / median * 100;
        }
    }

    public static double Median(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}

/// <summary>
/// CPU seconds used so far by the proxy (every process in its namespace) and by the load generator
/// (this process: the clients and the target servers).
/// </summary>
internal readonly record struct CpuTime(double ProxySeconds, double LoadGeneratorSeconds)
{
    public static CpuTime operator -(CpuTime a, CpuTime b) => new(a.ProxySeconds - b.ProxySeconds, a.LoadGeneratorSeconds - b.LoadGeneratorSeconds);
}

/// <summary>
/// The load generator: SOCKS5 (no authentication) CONNECT and UDP ASSOCIATE clients on sockets from
/// the client namespace, or plain connects when <c>proxy</c> is null (the direct path).
/// </summary>
internal sealed class SocksLoad(NamespaceSocketSupply tcp, IPEndPoint? proxy)
{
    /// <summary>Opens a TCP connection to <paramref name="target"/>, through the proxy when there is one.</summary>
    public async Task<Socket> OpenAsync(IPEndPoint target, CancellationToken cancellationToken)
    {
        var socket = await tcp.TakeAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            socket.NoDelay = true;
            if (proxy is null)
            {
                await socket.ConnectAsync(target, cancellationToken).ConfigureAwait(false);
                return socket;
            }

            await socket.ConnectAsync(proxy, cancellationToken).ConfigureAwait(false);
            // The shared client's one-buffer handshake: no allocation or round trip beyond the protocol's.
            var (code, _) = await Socks5Client.HandshakeAsync(socket, Socks5Client.Connect, target, cancellationToken).ConfigureAwait(false);
            EnsureGranted(code);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Throws unless the SOCKS reply is success (a refusal counts as a failed setup).</summary>
    private static void EnsureGranted(byte code)
    {
        if (code != 0)
        {
            throw new IOException($"SOCKS reply {code}");
        }
    }

    /// <summary>
    /// Bulk throughput: <paramref name="streams"/> connections send for a warm-up, then for
    /// <paramref name="duration"/>; bits/s at the sink, the bytes it received in that time and how
    /// far <paramref name="cpu"/> (cumulative CPU clocks) advanced meanwhile.
    /// </summary>
    public async Task<(double BitsPerSecond, long Bytes, CpuTime Cpu)> ThroughputAsync(BenchTargets targets, IPEndPoint sink, int streams, TimeSpan duration, Func<CpuTime> cpu)
    {
        using var stop = new CancellationTokenSource(duration + TimeSpan.FromSeconds(10));
        var sockets = new List<Socket>();
        try
        {
            for (int i = 0; i < streams; i++)
            {
                sockets.Add(await OpenAsync(sink, stop.Token).ConfigureAwait(false));
            }

            var running = new CancellationTokenSource();
            var senders = sockets.Select(s => Task.Run(async () =>
            {
                var chunk = new byte[128 * 1024];
                try
                {
                    while (!running.IsCancellationRequested)
                    {
                        await s.SendAsync(chunk, SocketFlags.None, running.Token).ConfigureAwait(false);
                    }
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
                {
                }
            })).ToArray();
            await Task.Delay(TimeSpan.FromMilliseconds(500)).ConfigureAwait(false);
            long start = targets.SinkBytes;
            var cpuStart = cpu();
            var clock = Stopwatch.StartNew();
            await Task.Delay(duration).ConfigureAwait(false);
            long bytes = targets.SinkBytes - start;
            var used = cpu() - cpuStart;
            double bits = bytes * 8.0 / clock.Elapsed.TotalSeconds;
            await running.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(senders).ConfigureAwait(false);
            running.Dispose();
            return (bits, bytes, used);
        }
        finally
        {
            foreach (var s in sockets)
            {
                s.Dispose();
            }
        }
    }

    /// <summary>
    /// CONNECT rate: <paramref name="workers"/> loops of connect + SOCKS CONNECT + 32-byte request and
    /// response + close, for <paramref name="duration"/>. Setup latency is connect start to CONNECT reply.
    /// With a <paramref name="window"/>, also counts the setups completed in each full window of that
    /// length (the steadiness run of issue 3: the rate per 5 s over 60 s).
    /// </summary>
    public async Task<ConnectRateResult> ConnectRateAsync(IPEndPoint target, bool targetCloses, int workers, TimeSpan duration, TimeSpan? window = null)
    {
        using var hardStop = new CancellationTokenSource(duration + TimeSpan.FromSeconds(5));
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var windowTicks = window is { } w ? (long)(w.TotalSeconds * Stopwatch.Frequency) : 0;
        // Only full windows count; a setup finishing after the last full one is left out of them.
        var windowCounts = new long[windowTicks > 0 ? (int)((deadline - start) / windowTicks) : 0];
        long failures = 0;
        var clock = Stopwatch.StartNew();
        var perWorker = await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(async () =>
        {
            var latencies = new List<double>(4096);
            var buffer = new byte[BenchTargets.ExchangeBytes];
            while (Stopwatch.GetTimestamp() < deadline)
            {
                long t0 = Stopwatch.GetTimestamp();
                Socket? socket = null;
                try
                {
                    socket = await OpenAsync(target, hardStop.Token).ConfigureAwait(false);
                    long t1 = Stopwatch.GetTimestamp();
                    latencies.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
                    if (windowTicks > 0 && (t1 - start) / windowTicks is var slot && slot < windowCounts.Length)
                    {
                        Interlocked.Increment(ref windowCounts[slot]);
                    }
                    await socket.SendAsync(buffer, SocketFlags.None, hardStop.Token).ConfigureAwait(false);
                    await Socks5Client.ReadExactlyAsync(socket, buffer, hardStop.Token).ConfigureAwait(false);
                    if (targetCloses)
                    {
                        while (await socket.ReceiveAsync(buffer, SocketFlags.None, hardStop.Token).ConfigureAwait(false) > 0)
                        {
                        }
                    }
                }
                catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
                {
                    Interlocked.Increment(ref failures);
                }
                finally
                {
                    socket?.Dispose();
                }
            }

            return latencies;
        }))).ConfigureAwait(false);
        var elapsed = clock.Elapsed.TotalSeconds;
        var all = perWorker.SelectMany(l => l).Order().ToArray();
        var windowRates = windowCounts.Select(c => c / window!.Value.TotalSeconds).ToArray();
        return all.Length == 0
            ? new ConnectRateResult(0, double.NaN, double.NaN, failures, windowRates, 0)
            : new ConnectRateResult(all.Length / elapsed, all[all.Length / 2], all[Math.Min(all.Length - 1, (int)(all.Length * 0.99))], failures, windowRates, all.Length);
    }

    /// <summary>Opens <paramref name="count"/> sessions to <paramref name="target"/> and keeps them open (idle).</summary>
    public async Task<List<Socket>> HoldAsync(IPEndPoint target, int count)
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var held = new List<Socket>(count);
        var gate = new SemaphoreSlim(20);
        var tasks = Enumerable.Range(0, count).Select(async _ =>
        {
            await gate.WaitAsync(stop.Token).ConfigureAwait(false);
            try
            {
                var s = await OpenAsync(target, stop.Token).ConfigureAwait(false);
                lock (held)
                {
                    held.Add(s);
                }
            }
            finally
            {
                gate.Release();
            }
        });
        await Task.WhenAll(tasks).ConfigureAwait(false);
        return held;
    }

    /// <summary>
    /// UDP round trips per second: one client, one datagram in flight, for <paramref name="duration"/>;
    /// through a UDP ASSOCIATE when there is a proxy, else straight to the echo.
    /// </summary>
    public async Task<double> UdpRoundTripsAsync(LabHost client, IPEndPoint echo, TimeSpan duration)
    {
        using var stop = new CancellationTokenSource(duration + TimeSpan.FromSeconds(10));
        using var udp = client.OpenSocket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(IPAddress.Any, 0));
        Socket? control = null;
        IPEndPoint sendTo = echo;
        var payload = new byte[64];
        int header = 0;
        if (proxy is not null)
        {
            control = await tcp.TakeAsync(stop.Token).ConfigureAwait(false);
            await control.ConnectAsync(proxy, stop.Token).ConfigureAwait(false);
            var (code, relay) = await Socks5Client.HandshakeAsync(control, Socks5Client.UdpAssociate, new IPEndPoint(IPAddress.Any, 0), stop.Token).ConfigureAwait(false);
            EnsureGranted(code);
            sendTo = relay.Address.Equals(IPAddress.Any) ? new IPEndPoint(proxy.Address, relay.Port) : relay;
            header = Socks5Client.UdpHeaderLength(echo);
            Socks5Client.WriteUdpHeader(payload, echo);
        }

        try
        {
            var receive = new byte[2048];
            long ok = 0;
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < duration)
            {
                BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(header), ok);
                await udp.SendToAsync(payload, SocketFlags.None, sendTo, stop.Token).ConfigureAwait(false);
                using var one = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
                one.CancelAfter(TimeSpan.FromMilliseconds(500));
                try
                {
                    int n = await udp.ReceiveAsync(receive, SocketFlags.None, one.Token).ConfigureAwait(false);
                    if (n == payload.Length)
                    {
                        ok++;
                    }
                }
                catch (OperationCanceledException) when (!stop.IsCancellationRequested)
                {
                    // Lost: counted by not counting it.
                }
            }

            return ok / clock.Elapsed.TotalSeconds;
        }
        finally
        {
            control?.Dispose();
        }
    }
}
