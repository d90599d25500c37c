using L2Balance.Fuzz.Targets.Proxy;
using Xunit;

namespace L2Balance.Fuzz.Engine;

/// <summary>The harness itself: what it must count as a failure, it counts, with what replays it.</summary>
public sealed class FuzzRunnerTests
{
    private static readonly FuzzOptions Quick = new(200, 7, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(30));

    [Fact]
    public void Runner_ParserThatThrows_CountsCrashWithReplayLineAndHex()
    {
        var report = FuzzRunner.Run(new ProbeTarget(input => input.Length > 3 ? throw new ArgumentOutOfRangeException(nameof(input), "boom") : 0), Quick);

        Assert.True(report.Crashes > 0);
        var failure = report.Failures[0];
        Assert.Equal("crash", failure.Kind);
        Assert.Contains("ArgumentOutOfRangeException", failure.Detail, StringComparison.Ordinal);
        Assert.Contains($"--seed 0x{Quick.Seed:x16} --index {failure.Index}", failure.ToString(), StringComparison.Ordinal);
        Assert.Contains(Convert.ToHexString(failure.Input), failure.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Runner_DocumentedRejection_IsNotACrash()
    {
        var report = FuzzRunner.Run(new ProbeTarget(_ => throw new FormatException("refused"), documented: typeof(FormatException)), Quick);

        Assert.Equal(0, report.FailureCount);
        Assert.Equal(Quick.Inputs, report.Inputs);
    }

    [Fact]
    public void Runner_ParserThatNeverReturns_ReportsHangWithItsInput()
    {
        using var release = new ManualResetEventSlim();
        var report = FuzzRunner.Run(new ProbeTarget(input => input.Length == 0 || input[0] != 0x5 ? 0 : Block(release)), Quick);
        release.Set();

        Assert.Equal(1, report.Hangs);
        Assert.Equal(0x5, report.Failures.Single().Input[0]);
    }

    [Fact]
    public void Runner_ParserSlowerThanBoundTwice_CountsHang()
    {
        var report = FuzzRunner.Run(new ProbeTarget(input => input.Length == 2 ? Sleep(150) : 0), Quick with { Inputs = 50 });

        Assert.True(report.Hangs > 0);
        Assert.True(report.Inputs == 50);
    }

    [Fact]
    public void Runner_ParserAllocatingPastItsBound_CountsAllocationFailure()
    {
        var report = FuzzRunner.Run(new ProbeTarget(input => new byte[100_000 + input.Length].Length), Quick);

        Assert.Equal(Quick.Inputs, report.AllocationFailures);
        Assert.True(report.MaxAllocated >= 100_000);
    }

    [Fact]
    public void Runner_AllocationOnAFirstRunOnly_IsCountedButNotAFailure()
    {
        int runs = 0;
        var report = FuzzRunner.Run(new ProbeTarget(_ => Interlocked.Increment(ref runs) == 1 ? new byte[100_000].Length : 0), Quick);

        Assert.Equal(0, report.FailureCount);
        Assert.Equal(1, report.FirstRunAllocations);
        Assert.True(report.MaxFirstRunAllocation >= 100_000);
    }

    /// <summary>Across instances, as across processes: a replay line must give the input that failed.</summary>
    [Fact]
    public void Mutator_SameSeedTargetAndIndex_GivesTheSameInput()
    {
        var first = FuzzTargets.CreateAll();
        var again = FuzzTargets.CreateAll();
        for (int t = 0; t < first.Count; t++)
        {
            for (long index = 0; index < 50; index++)
            {
                Assert.Equal(Mutator.Make(first[t], 42, index, out _, out _), Mutator.Make(again[t], 42, index, out _, out _));
            }
        }

        var target = new Socks5RequestTarget();
        Assert.NotEqual(Mutator.Make(target, 42, 0, out _, out _), Mutator.Make(target, 43, 0, out _, out _));
    }

    [Fact]
    public void Runner_ReplayOfAFailingIndex_FailsTheSameWay()
    {
        var target = new ProbeTarget(input => input.Length > 3 ? throw new InvalidOperationException("x") : 0);
        var failure = FuzzRunner.Run(target, Quick).Failures[0];

        var replay = FuzzRunner.Run(target, Quick with { OnlyIndex = failure.Index });

        Assert.Equal(1, replay.Inputs);
        Assert.Equal(failure.Input, replay.Failures.Single().Input);
    }

    private static int Block(ManualResetEventSlim release)
    {
        release.Wait();
        return 0;
    }

    private static int Sleep(int milliseconds)
    {
        Thread.Sleep(milliseconds);
        return 0;
    }

    /// <summary>A parser stand-in for testing the harness: it does what the test says with each input.</summary>
    private sealed class ProbeTarget(Func<byte[], int> parse, Type? documented = null) : FuzzTarget<byte[], int>
    {
        public override string Name => "probe";

        public override string Product => "test";

        public override string EntryPoint => "the test's function";

        public override IReadOnlyList<byte[]> Seeds { get; } = [[1, 2, 3], [5, 0, 0, 0, 0], []];

        public override long AllocationBound(int length) => 50_000;

        public override bool IsDocumentedRejection(Exception exception) => exception.GetType() == documented;

        protected override byte[] Convert(byte[] input, ref FuzzRandom random) => input;

        protected override int Parse(byte[] input) => parse(input);

        protected override bool IsAccepted(int result) => true;
    }
}
