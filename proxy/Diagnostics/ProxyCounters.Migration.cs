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
    private long _migrationCaptureUnparsed;

    /// <summary>Sessions that moved to another node's l2proxy (this node closed its frozen copy).</summary>
    public long MigrationsOut => Interlocked.Read(ref _migrationsOut);

    /// <summary>Sessions restored here from another node and relayed on.</summary>
    public long MigrationsIn => Interlocked.Read(ref _migrationsIn);

    /// <summary>Sessions a move asked for that stayed, by reason (here or, for restore-failed, on the peer).</summary>
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

    /// <summary>Frames the capture's filter passed that it could not read as a whole TCP segment (a fragment, an unknown IPv6 extension header, bad lengths): never taken.</summary>
    public long MigrationCaptureUnparsedFrames => Interlocked.Read(ref _migrationCaptureUnparsed);

    public void MigrationCaptureUnparsed() => Interlocked.Increment(ref _migrationCaptureUnparsed);

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
        w.Family("l2proxy_migration_capture_unparsed_total", MetricType.Counter, "Frames the migration capture could not read as a whole TCP segment (fragments, unknown IPv6 extension headers): never appended.");
        w.Sample(MigrationCaptureUnparsedFrames);
        w.Family("l2proxy_migrations_refused_total", MetricType.Counter, "Sessions a move asked for that stayed on this node, by reason.");
        foreach (var reason in Enum.GetValues<MigrationRefusal>())
        {
            w.Sample("reason", reason.Word(), MigrationsRefused(reason));
        }
    }
}
