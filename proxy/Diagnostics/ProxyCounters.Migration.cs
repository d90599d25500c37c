using L2Balance.Common.Metrics;
using L2Balance.Proxy.Migration;

namespace L2Balance.Proxy.Diagnostics;

/// <summary>Live migration (issue 19): sessions moved out, moved in, and refused by reason.</summary>
public sealed partial class ProxyCounters
{
    private readonly long[] _migrationsRefused = new long[Enum.GetValues<MigrationRefusal>().Length];
    private long _migrationsOut;
    private long _migrationsIn;
    private long _migrationCapturedBytes;
    private long _migrationCapturedAtGoBytes;
    private long _migrationGoAppendsSkipped;
    private long _migrationCaptureFrames;
    private long _migrationCaptureDrops;
    private long _migrationAcksSent;
    private long _migrationCaptureLate;
    private long _migrationAcksFailed;
    private long _migrationCaptureUnparsed;
    private long _migrationsLost;

    /// <summary>Sessions that moved to another node's l2proxy (this node closed its frozen copy).</summary>
    public long MigrationsOut => Interlocked.Read(ref _migrationsOut);

    /// <summary>Sessions restored here from another node and relayed on.</summary>
    public long MigrationsIn => Interlocked.Read(ref _migrationsIn);

    /// <summary>Sessions a move asked for that stayed, by reason (here or, for restore-failed, on the peer before Go).</summary>
    public long MigrationsRefused(MigrationRefusal reason) => Interlocked.Read(ref _migrationsRefused[(int)reason]);

    /// <summary>Bytes the ends sent while their flows moved, captured here and appended to restored receive queues (docs/design.md#the-pause).</summary>
    public long MigrationCapturedBytes => Interlocked.Read(ref _migrationCapturedBytes);

    public void MigrationCaptured(int bytes) => Interlocked.Add(ref _migrationCapturedBytes, bytes);

    /// <summary>Of those, the bytes appended at Go: sent by the ends between the restore and Go (docs/design.md#the-pause).</summary>
    public long MigrationCapturedAtGoBytes => Interlocked.Read(ref _migrationCapturedAtGoBytes);

    /// <summary>Restored legs whose rcv_nxt moved between the restore and Go: nothing appended at Go to them.</summary>
    public long MigrationGoAppendsSkipped => Interlocked.Read(ref _migrationGoAppendsSkipped);

    public void MigrationCapturedAtGo(int bytes) => Interlocked.Add(ref _migrationCapturedAtGoBytes, bytes);

    public void MigrationGoAppendSkipped() => Interlocked.Increment(ref _migrationGoAppendsSkipped);

    /// <summary>Frames the capture's filter passed to it (docs/design.md#the-pause): every inbound TCP frame while a channel is open.</summary>
    public long MigrationCaptureFrames => Interlocked.Read(ref _migrationCaptureFrames);

    /// <summary>Frames the kernel dropped before the capture read them (its receive buffer full): their ends resend on a timer.</summary>
    public long MigrationCaptureDrops => Interlocked.Read(ref _migrationCaptureDrops);

    public void MigrationCapture(long frames, long drops)
    {
        Interlocked.Add(ref _migrationCaptureFrames, frames);
        Interlocked.Add(ref _migrationCaptureDrops, drops);
    }

    /// <summary>Acknowledgements sent to the ends right after a restored leg's thaw (docs/design.md#the-pause).</summary>
    public long MigrationAcksSent => Interlocked.Read(ref _migrationAcksSent);

    /// <summary>Those that could not be sent (no CAP_NET_RAW, a send error): the end learns from the next segment instead.</summary>
    public long MigrationAcksFailed => Interlocked.Read(ref _migrationAcksFailed);

    /// <summary>Segments of a flow that arrived between Go's take of its capture and its socket's mark: dropped, resent by the end.</summary>
    public long MigrationCaptureLateSegments => Interlocked.Read(ref _migrationCaptureLate);

    public void MigrationCaptureLate(int segments) => Interlocked.Add(ref _migrationCaptureLate, segments);

    public void MigrationAckSent() => Interlocked.Increment(ref _migrationAcksSent);

    public void MigrationAckFailed() => Interlocked.Increment(ref _migrationAcksFailed);
    /// <summary>Frames the capture's filter passed that it could not read as a whole TCP segment (a fragment, an unknown IPv6 extension header, bad lengths): never taken.</summary>
    public long MigrationCaptureUnparsedFrames => Interlocked.Read(ref _migrationCaptureUnparsed);

    public void MigrationCaptureUnparsed() => Interlocked.Increment(ref _migrationCaptureUnparsed);

    /// <summary>
    /// Sessions whose Go came here (the old node closed its copy) but whose restored copy could not go live: lost, their
    /// legs reset so the ends learn at once (docs/design.md#failure-paths-of-a-move).
    /// </summary>
    public long MigrationsLost => Interlocked.Read(ref _migrationsLost);

    public void MigrationLost() => Interlocked.Increment(ref _migrationsLost);

    public void MigratedOut() => Interlocked.Increment(ref _migrationsOut);

    public void MigratedIn() => Interlocked.Increment(ref _migrationsIn);

    public void MigrationRefused(MigrationRefusal reason) => Interlocked.Increment(ref _migrationsRefused[(int)reason]);

    private void WriteMigrationMetrics(PrometheusWriter w)
    {
        w.Family("l2proxy_migrations_total", MetricType.Counter, "Sessions moved by live migration, by direction: out (to another node), in (restored here).");
        w.Sample("direction", "out", MigrationsOut);
        w.Sample("direction", "in", MigrationsIn);
        w.Family("l2proxy_migration_captured_bytes_total", MetricType.Counter, "Bytes the ends sent while their flows moved, captured here and appended to the restored sockets' receive queues.");
        w.Sample(MigrationCapturedBytes);
        w.Family("l2proxy_migration_captured_at_go_bytes_total", MetricType.Counter, "Captured bytes appended at Go: sent by the ends between the restore and Go (not in l2proxy_migration_captured_bytes_total).");
        w.Sample(MigrationCapturedAtGoBytes);
        w.Family("l2proxy_migration_go_appends_skipped_total", MetricType.Counter, "Restored legs whose rcv_nxt moved between the restore and Go, so nothing captured was appended to them at Go.");
        w.Sample(MigrationGoAppendsSkipped);
        w.Family("l2proxy_migration_capture_frames_total", MetricType.Counter, "Frames the migration capture's filter passed to it while channels were open (read by l2proxy or dropped).");
        w.Sample(MigrationCaptureFrames + MigrationCaptureDrops);
        w.Family("l2proxy_migration_capture_drops_total", MetricType.Counter, "Frames the kernel dropped before the migration capture read them (receive buffer full); their ends resend them on a timer.");
        w.Sample(MigrationCaptureDrops);
        w.Family("l2proxy_migration_capture_late_segments_total", MetricType.Counter, "Segments with payload that arrived between Go's take of a flow's capture and its socket's mark: appended nowhere, resent by their end.");
        w.Sample(MigrationCaptureLateSegments);
        w.Family("l2proxy_migration_acks_total", MetricType.Counter, "Acknowledgements a restored leg owed its end, sent right after its thaw, by result (failed: no CAP_NET_RAW or a send error).");
        w.Sample("result", "sent", MigrationAcksSent);
        w.Sample("result", "failed", MigrationAcksFailed);
        w.Family("l2proxy_migration_capture_unparsed_total", MetricType.Counter, "Frames the migration capture could not read as a whole TCP segment (fragments, unknown IPv6 extension headers): never appended.");
        w.Sample(MigrationCaptureUnparsedFrames);
        w.Family("l2proxy_migrations_lost_total", MetricType.Counter, "Sessions whose Go came (the old node closed its copy) but whose restored copy could not go live here: lost, their legs reset.");
        w.Sample(MigrationsLost);
        w.Family("l2proxy_migrations_refused_total", MetricType.Counter, "Sessions a move asked for that stayed on this node, by reason.");
        foreach (var reason in Enum.GetValues<MigrationRefusal>())
        {
            w.Sample("reason", reason.Word(), MigrationsRefused(reason));
        }
    }
}
