using System.Diagnostics;

namespace L2Balance.Fuzz.Engine;

/// <summary>How a run is bounded and seeded.</summary>
/// <param name="Inputs">Inputs to run (indices 0..Inputs-1, or only <paramref name="OnlyIndex"/>).</param>
/// <param name="Seed">The run seed; with the target name and the index it fixes every input.</param>
/// <param name="HangBound">Longest one input may take; a slower input is run again alone and is a hang if it is slow again.</param>
/// <param name="MaxDuration">The run stops (reporting how many inputs ran) after this long.</param>
/// <param name="OnlyIndex">Replays one input (what a failure report prints).</param>
public sealed record FuzzOptions(long Inputs, ulong Seed, TimeSpan HangBound, TimeSpan MaxDuration, long? OnlyIndex = null)
{
    /// <summary>An input still running after this many hang bounds is reported and the run is abandoned.</summary>
    public const int GiveUpAfterBounds = 10;
}

/// <summary>What a failed input did, with what it takes to replay it.</summary>
public sealed record FuzzFailure(string Kind, string Target, ulong Seed, long Index, byte[] Input, string Detail)
{
    public override string ToString() =>
        $"{Kind} in {Target}, seed 0x{Seed:x16} input {Index} ({Input.Length} bytes): {Detail}\n" +
        $"  replay: bash lab/fuzz {Target} --seed 0x{Seed:x16} --index {Index}\n" +
        $"  input hex: {Convert.ToHexString(Input)}";
}

/// <summary>The counts of one target's run.</summary>
public sealed class FuzzReport(string target)
{
    private readonly List<FuzzFailure> _failures = [];

    public string Target { get; } = target;

    public long Inputs { get; internal set; }

    public long Generated { get; internal set; }

    public long Accepted { get; internal set; }

    public long Crashes { get; internal set; }

    public long Hangs { get; internal set; }

    public long PropertyFailures { get; internal set; }

    public long AllocationFailures { get; internal set; }

    /// <summary>Inputs slower than the hang bound once but not when run again (the machine was busy).</summary>
    public long Stalls { get; internal set; }

    public long MaxAllocated { get; internal set; }

    /// <summary>Inputs past the allocation bound on their first run only (static initialisation of a path), and the most such a run took.</summary>
    public long FirstRunAllocations { get; internal set; }

    public long MaxFirstRunAllocation { get; internal set; }

    public int MaxAllocatedInputLength { get; internal set; }

    public TimeSpan Elapsed { get; internal set; }

    public TimeSpan SlowestInput { get; internal set; }

    /// <summary>The first failures (at most <see cref="FuzzRunner.KeptFailures"/>), for their hex and replay line.</summary>
    public IReadOnlyList<FuzzFailure> Failures => _failures;

    public long FailureCount => Crashes + Hangs + PropertyFailures + AllocationFailures;

    internal void Add(FuzzFailure failure)
    {
        if (_failures.Count < FuzzRunner.KeptFailures)
        {
            _failures.Add(failure);
        }
    }

    public override string ToString() =>
        $"{Target,-18} {Inputs,9} inputs ({Generated} generated, {Accepted} accepted)  crashes {Crashes}  hangs {Hangs}  " +
        $"property failures {PropertyFailures}  allocation failures {AllocationFailures}  stalls {Stalls}  " +
        $"max allocation {MaxAllocated} B (input of {MaxAllocatedInputLength} B; first runs over the bound {FirstRunAllocations}, at most {MaxFirstRunAllocation} B)  slowest {SlowestInput.TotalMilliseconds:0.0} ms  " +
        $"time {Elapsed.TotalSeconds:0.0} s";
}

/// <summary>
/// Runs a target's inputs on a thread of their own while the calling thread watches it: an input
/// that never returns is reported as a hang (with its hex) instead of stalling the run. Each input
/// is also timed and its allocation checked against the target's bound.
/// </summary>
public static class FuzzRunner
{
    public const int KeptFailures = 10;

    private static readonly TimeSpan WatchInterval = TimeSpan.FromMilliseconds(50);

    public static FuzzReport Run(FuzzTarget target, FuzzOptions options, Action<FuzzReport>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(options);
        var report = new FuzzReport(target.Name);
        var state = new WatchState();
        var started = Stopwatch.StartNew();
        var worker = new Thread(() => RunInputs(target, options, report, state, started)) { IsBackground = true, Name = $"fuzz {target.Name}" };
        worker.Start();
        var lastProgress = Stopwatch.StartNew();
        var giveUp = options.HangBound * FuzzOptions.GiveUpAfterBounds;
        while (!worker.Join(WatchInterval))
        {
            long startedAt = Volatile.Read(ref state.InputStarted);
            if (startedAt != 0 && Stopwatch.GetElapsedTime(startedAt) > giveUp)
            {
                // The input never returned: report it and leave the thread behind (it is a background thread).
                state.Abandoned = true;
                var current = Volatile.Read(ref state.Current)!;
                lock (report)
                {
                    report.Hangs++;
                    report.Add(new FuzzFailure("hang", target.Name, options.Seed, current.Index, current.Input,
                        $"still running after {giveUp.TotalSeconds:0.#} s"));
                    report.Elapsed = started.Elapsed;
                }

                return report;
            }

            if (progress is not null && lastProgress.Elapsed > TimeSpan.FromSeconds(30))
            {
                lastProgress.Restart();
                lock (report)
                {
                    report.Elapsed = started.Elapsed;
                    progress(report);
                }
            }
        }

        report.Elapsed = started.Elapsed;
        return report;
    }

    private static void RunInputs(FuzzTarget target, FuzzOptions options, FuzzReport report, WatchState state, Stopwatch started)
    {
        long first = options.OnlyIndex ?? 0;
        long end = options.OnlyIndex is { } only ? only + 1 : options.Inputs;
        for (long index = first; index < end && !state.Abandoned && started.Elapsed < options.MaxDuration; index++)
        {
            byte[] input = Mutator.Make(target, options.Seed, index, out var random, out bool generated);
            Volatile.Write(ref state.Current, new Current(index, input));
            var result = RunOne(target, input, random, state);
            if (result.Elapsed > options.HangBound)
            {
                // Once slow may be the machine (eight builds on two cores): slow again alone is a hang.
                var again = RunOne(target, input, random, state);
                result = again.Elapsed > options.HangBound ? again with { Failure = ("hang", $"took {again.Elapsed.TotalMilliseconds:0} ms twice") } : result with { Stalled = true };
            }
            else if (result.Failure is ("allocation", _))
            {
                // The first run of a path pays its static initialisation once per process: only an input
                // that allocates past its bound again is a failure.
                var again = RunOne(target, input, random, state);
                result = again.Failure is ("allocation", _) ? again : again with { FirstRunOnly = result.Outcome.Allocated };
            }

            lock (report)
            {
                Count(report, target, options, index, input, generated, result);
            }
        }

        Volatile.Write(ref state.InputStarted, 0);
    }

    private static Result RunOne(FuzzTarget target, byte[] input, FuzzRandom random, WatchState state)
    {
        long start = Stopwatch.GetTimestamp();
        Volatile.Write(ref state.InputStarted, start);
        try
        {
            var outcome = target.Run(input, ref random);
            var elapsed = Stopwatch.GetElapsedTime(start);
            return outcome.Allocated > target.AllocationBound(input.Length)
                ? new Result(elapsed, outcome, ("allocation", $"allocated {outcome.Allocated} B, bound {target.AllocationBound(input.Length)} B"))
                : new Result(elapsed, outcome, null);
        }
        catch (FuzzPropertyException e)
        {
            return new Result(Stopwatch.GetElapsedTime(start), default, ("property", e.Message));
        }
        catch (Exception e) when (target.IsDocumentedRejection(e))
        {
            return new Result(Stopwatch.GetElapsedTime(start), default, null);
        }
        catch (Exception e)
        {
            return new Result(Stopwatch.GetElapsedTime(start), default, ("crash", e.ToString()));
        }
    }

    private static void Count(FuzzReport report, FuzzTarget target, FuzzOptions options, long index, byte[] input, bool generated, Result result)
    {
        report.Inputs++;
        report.Generated += generated ? 1 : 0;
        report.Accepted += result.Outcome.Accepted ? 1 : 0;
        report.Stalls += result.Stalled ? 1 : 0;
        report.FirstRunAllocations += result.FirstRunOnly > 0 ? 1 : 0;
        report.MaxFirstRunAllocation = Math.Max(report.MaxFirstRunAllocation, result.FirstRunOnly);
        if (result.Elapsed > report.SlowestInput)
        {
            report.SlowestInput = result.Elapsed;
        }

        if (result.Outcome.Allocated > report.MaxAllocated)
        {
            report.MaxAllocated = result.Outcome.Allocated;
            report.MaxAllocatedInputLength = input.Length;
        }

        if (result.Failure is not { } failure)
        {
            return;
        }

        switch (failure.Kind)
        {
            case "crash": report.Crashes++; break;
            case "hang": report.Hangs++; break;
            case "property": report.PropertyFailures++; break;
            default: report.AllocationFailures++; break;
        }

        report.Add(new FuzzFailure(failure.Kind, target.Name, options.Seed, index, input, failure.Detail));
    }

    private sealed record Current(long Index, byte[] Input);

    private readonly record struct Result(TimeSpan Elapsed, FuzzTarget.Outcome Outcome, (string Kind, string Detail)? Failure, bool Stalled = false, long FirstRunOnly = 0);

    private sealed class WatchState
    {
        public long InputStarted;
        public Current? Current;
        public volatile bool Abandoned;
    }
}
