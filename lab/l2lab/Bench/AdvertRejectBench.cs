using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;
using L2Balance.Common.Linux;
using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// <c>l2lab bench-advert-reject</c>: the CPU l2bal spends per rejected advert frame on its receive
/// path (issue 14; docs/design.md#advert-budget). Two namespaces joined by a veth pair: one sends
/// a batch of frames of one kind, the other holds l2bal's own AdvertChannel (its receive ring)
/// and AdvertVerifier, and the batch, queued in full, is timed as the loop takes it: the frame
/// taken from the ring, the frame checks, the verifier. Also the verifier alone on the same bytes
/// (no socket). Every case first runs uncounted for 2 s in all, so the JIT's tiering is over
/// before the timing (l2bal itself is Native AOT). Prints a table and writes artifacts/bench/advert-reject-TIMESTAMP.json; not a test.
/// </summary>
internal static class AdvertRejectBench
{
    private const int Batch = 4000;
    private const int Rounds = 25;
    private const int InMemory = 1_000_000;
    private const uint ClusterId = 10;
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(2);

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    public static async Task<int> RunAsync()
    {
        await using var network = LabNetwork.Create();
        var sender = network.AddHost("tx");
        var receiver = network.AddHost("rx");
        network.Link(sender, "eth0", receiver, "eth0");
        using var attacker = SegmentAttacker.Open(sender, "eth0");
        await using var channel = NamespaceThread.Run(receiver.NamespacePath, () => AdvertChannel.Open("eth0"), "bench-rx");

        var key = RandomNumberGenerator.GetBytes(32);
        var digest = AdvertConfigDigest.Compute(System.Net.IPAddress.Parse("198.18.0.10"), 4096, ClusterId, 3, ClusterId);
        using var keys = new AdvertKeys(key);
        var advert = new Advert(ClusterId, 2, 3, AdvertState.Active, 1, 1, digest, 0b111, 0b111, 1365, AdvertFlags.Settled);
        var cases = new (string Name, string Reason, Func<long, byte[]> Frame)[]
        {
            ("bad HMAC (our key id: the HMAC is computed)", "BadHmac", Varying(Frame(advert, keys, keys.CurrentId), last: true)),
            ("unknown key id (no HMAC)", "UnknownKey", Varying(Frame(advert, keys, keys.CurrentId, keyId: keys.CurrentId ^ 1), last: true)),
            ("other cluster id", "OtherCluster", Varying(Frame(advert with { ClusterId = ClusterId + 1 }, keys, keys.CurrentId), last: true)),
            ("replayed (authentic, HMAC and replay check)", "Replayed", Varying(Frame(advert, keys, keys.CurrentId), last: false)),
        };

        // The bench runs under the JIT, l2bal under Native AOT: every case is first run, uncounted,
        // for WarmUp in all (tiered compilation promotes hot code after about 100 ms of it).
        var warmUp = Stopwatch.StartNew();
        while (warmUp.Elapsed < WarmUp)
        {
            foreach (var (_, reason, frame) in cases)
            {
                using var verifier = new AdvertVerifier(key, ClusterId, 1, digest);
                attacker.Flood(frame, TimeSpan.FromSeconds(10), Batch);
                Drain(channel, verifier, Enum.Parse<AdvertRejection>(reason));
            }
        }

        var rows = new List<object>();
        Console.WriteLine($"{"frames of one kind, queued then taken",-48} {"µs/frame wall",14} {"µs/frame CPU",13} {"verifier only µs",17}  frames");
        foreach (var (name, reason, frame) in cases)
        {
            using var verifier = new AdvertVerifier(key, ClusterId, 1, digest);
            var expected = Enum.Parse<AdvertRejection>(reason);
            long taken = 0, wrong = 0;
            var wall = TimeSpan.Zero;
            var cpu = TimeSpan.Zero;
            for (var round = 0; round < Rounds; round++)
            {
                attacker.Flood(frame, TimeSpan.FromSeconds(10), Batch);
                // The veth delivers synchronously; the queue now holds the batch (kernel drops are reported).
                var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
                var clock = Stopwatch.StartNew();
                var (roundTaken, roundWrong) = Drain(channel, verifier, expected);
                wall += clock.Elapsed;
                cpu += Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
                taken += roundTaken;
                wrong += roundWrong;
            }
            var sample = frame(7)[14..];
            using var alone = new AdvertVerifier(key, ClusterId, 1, digest);
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            var memory = Stopwatch.StartNew();
            for (var i = 0; i < InMemory; i++)
            {
                alone.TryAccept(sample, out _, out _, out _);
            }
            var memoryUs = memory.Elapsed.TotalMicroseconds / InMemory;
            var bytesPerFrame = (GC.GetAllocatedBytesForCurrentThread() - allocated) / (double)InMemory;
            var drops = channel.ReadKernelDrops();
            var wallUs = wall.TotalMicroseconds / Math.Max(1, taken);
            var cpuUs = cpu.TotalMicroseconds / Math.Max(1, taken);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-48} {wallUs,14:0.00} {cpuUs,13:0.00} {memoryUs,17:0.000}  {taken} taken, {wrong} not {reason}, {drops} dropped by the kernel so far, {bytesPerFrame:0} B allocated per verification"));
            rows.Add(new { Case = name, Reason = reason, Frames = taken, Wrong = wrong, KernelDrops = drops, WallMicrosecondsPerFrame = wallUs, CpuMicrosecondsPerFrame = cpuUs, VerifierOnlyMicroseconds = memoryUs, VerifierBytesAllocatedPerFrame = bytesPerFrame });
        }

        // The floor of a frame that costs an HMAC: HMAC-SHA256 of the 80 signed bytes, as the verifier computes it.
        var signedBytes = cases[0].Frame(7).AsSpan(14, AdvertCodec.V2HeaderLength).ToArray();
        var hmacUs = HmacMicroseconds(keys.Current, signedBytes);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"HMAC-SHA256 alone (IncrementalHash, key preset)",-48} {"",14} {"",13} {hmacUs,17:0.000}"));

        var path = ClusterOps.ArtifactPath("bench", "advert-reject");
        File.WriteAllText(path, JsonSerializer.Serialize(new { StartedUtc = DateTimeOffset.UtcNow, Batch, Rounds, Rows = rows, HmacOnlyMicroseconds = hmacUs }, JsonOptions) + "\n");
        Console.WriteLine($"written to {path}");
        return 0;
    }

    /// <summary>Microseconds (wall) per HMAC-SHA256 of <paramref name="data"/> with a reusable keyed <paramref name="hmac"/>, as AdvertCodec computes it.</summary>
    private static double HmacMicroseconds(IncrementalHash hmac, byte[] data)
    {
        Span<byte> mac = stackalloc byte[32];
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < InMemory; i++)
        {
            hmac.AppendData(data);
            hmac.GetHashAndReset(mac);
        }
        return clock.Elapsed.TotalMicroseconds / InMemory;
    }

    /// <summary>Takes every queued frame as the loop does (AdvertChannel, then AdvertVerifier); returns how many, and how many were not rejected as <paramref name="expected"/>.</summary>
    private static (long Taken, long Wrong) Drain(AdvertChannel channel, AdvertVerifier verifier, AdvertRejection expected)
    {
        Span<byte> buffer = stackalloc byte[channel.FrameBufferLength];
        long taken = 0, wrong = 0;
        int length;
        while ((length = channel.TryReceive(buffer, out _)) > 0)
        {
            taken++;
            if (verifier.TryAccept(buffer.Slice(14, length), out _, out _, out var why) || why != expected)
            {
                wrong++;
            }
        }
        return (taken, wrong);
    }

    /// <summary>An advert frame from 02:00:00:00:00:aa to broadcast, signed as <paramref name="signWith"/>, naming <paramref name="keyId"/>.</summary>
    private static byte[] Frame(Advert advert, AdvertKeys keys, uint signWith, uint? keyId = null)
    {
        var frame = new byte[14 + AdvertCodec.V2Length];
        frame.AsSpan(0, 6).Fill(0xff);
        byte[] source = [2, 0, 0, 0, 0, 0xaa];
        source.CopyTo(frame, 6);
        frame[12] = 0x88;
        frame[13] = 0xb5;
        AdvertCodec.Write(advert, new AdvertEnvelope(AdvertCodec.Version2, signWith, 0), keys, frame.AsSpan(14));
        if (keyId is { } id)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(14 + 16), id);
        }
        return frame;
    }

    /// <summary>Each frame different: the counter in the MAC's last 8 bytes (<paramref name="last"/>), or the same frame each time (a replay).</summary>
    private static Func<long, byte[]> Varying(byte[] frame, bool last) => i =>
    {
        if (last)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(frame.AsSpan(frame.Length - 8), i);
        }
        return frame;
    };
}
