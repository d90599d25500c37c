using L2Balance.Common.Linux;
using Xunit;

namespace L2Balance.Common.Tests.Linux;

/// <summary>
/// The namespace thread entering the test process's own namespace (no network is touched); the lab
/// tests (Kernel*, Net*, LabNetwork*) use it to enter other namespaces.
/// </summary>
public sealed class NamespaceThreadTests
{
    private const string OwnNamespace = "/proc/self/ns/net";

    [RootFact]
    public void Invoke_Work_RunsOnTheNamedThreadInTheNamespace()
    {
        using var thread = new NamespaceThread(OwnNamespace, "test-netns");

        var (name, id, netns) = thread.Invoke(() => (Thread.CurrentThread.Name, Environment.CurrentManagedThreadId, ReadLink("/proc/thread-self/ns/net")));

        Assert.Equal("test-netns", name);
        Assert.NotEqual(Environment.CurrentManagedThreadId, id);
        Assert.Equal(ReadLink(OwnNamespace), netns);
    }

    [RootFact]
    public void Invoke_WorkThrows_RethrowsTheExceptionWithItsStack()
    {
        using var thread = new NamespaceThread(OwnNamespace);

        var e = Assert.Throws<InvalidDataException>(() => thread.Invoke(ThrowingWork));

        Assert.Equal("from the work item", e.Message);
        Assert.Contains(nameof(ThrowingWork), e.StackTrace, StringComparison.Ordinal);
        Assert.Equal(42, thread.Invoke(() => 42));
    }

    [RootFact]
    public void Invoke_FromManyCallers_RunsOneWorkItemAtATime()
    {
        using var thread = new NamespaceThread(OwnNamespace);
        var inside = 0;
        var most = 0;

        Parallel.For(0, 200, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ => thread.Invoke(() =>
        {
            var now = Interlocked.Increment(ref inside);
            most = Math.Max(most, now);
            Thread.SpinWait(1000);
            Interlocked.Decrement(ref inside);
        }));

        Assert.Equal(1, most);
    }

    [RootFact]
    public void Invoke_FromTheNamespaceThreadItself_RunsAtOnce()
    {
        using var thread = new NamespaceThread(OwnNamespace);

        Assert.Equal(7, thread.Invoke(() => thread.Invoke(() => 7)));
    }

    [RootFact]
    public async Task InvokeAsync_Continuation_DoesNotRunOnTheNamespaceThread()
    {
        using var thread = new NamespaceThread(OwnNamespace, "test-netns");

        var workThread = await thread.InvokeAsync(() => Environment.CurrentManagedThreadId);

        Assert.NotEqual("test-netns", Thread.CurrentThread.Name);
        Assert.NotEqual(workThread, Environment.CurrentManagedThreadId);
        await Assert.ThrowsAsync<InvalidDataException>(() => thread.InvokeAsync<int>(ThrowingWork));
    }

    [RootFact]
    public void Dispose_WithWorkQueued_FinishesItThenRefusesMore()
    {
        var thread = new NamespaceThread(OwnNamespace);
        using var release = new ManualResetEventSlim();
        var first = thread.InvokeAsync(() => release.Wait(TimeSpan.FromSeconds(10)));
        var second = thread.InvokeAsync(() => 2);

        release.Set();
        thread.Dispose();

        Assert.True(first.IsCompletedSuccessfully && first.Result);
        Assert.Equal(2, second.Result);
        Assert.Throws<ObjectDisposedException>(() => thread.Invoke(() => 3));
    }

    [RootFact]
    public void Run_OneShot_ReturnsTheResult()
    {
        Assert.Equal(ReadLink(OwnNamespace), NamespaceThread.Run(OwnNamespace, () => ReadLink("/proc/thread-self/ns/net")));
    }

    [Fact]
    public void Constructor_NotANetworkNamespace_ThrowsNamingTheCallAndErrno()
    {
        // setns checks the namespace type before the caller's privileges: EINVAL for anyone.
        var e = Assert.Throws<IOException>(() => new NamespaceThread("/proc/self/ns/uts"));

        Assert.Equal("setns(/proc/self/ns/uts, CLONE_NEWNET): EINVAL", e.Message);
    }

    [Fact]
    public void Constructor_MissingNamespaceFile_ThrowsNamingThePath()
    {
        var e = Assert.ThrowsAny<IOException>(() => new NamespaceThread("/var/run/netns/l2balance-no-such-namespace"));

        Assert.Contains("/var/run/netns/l2balance-no-such-namespace", e.Message, StringComparison.Ordinal);
    }

    private static int ThrowingWork() => throw new InvalidDataException("from the work item");

    private static string ReadLink(string path) => new FileInfo(path).LinkTarget!;
}
