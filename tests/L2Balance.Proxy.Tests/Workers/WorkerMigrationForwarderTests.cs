using System.Diagnostics;
using System.Net.Sockets;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Migration;
using L2Balance.Proxy.Workers;
using Xunit;

namespace L2Balance.Proxy.Tests.Workers;

/// <summary>The supervisor forwards migration requests to its workers over their channels and merges the answers.</summary>
public sealed class WorkerMigrationForwarderTests : IDisposable
{
    private const string Key = "key 1 0000000000000000000000000000000000000000000000000000000000000000";
    private readonly ProxyLog _log = new(new LogWriter([], []), 0);
    private readonly List<MigrationRefusal> _refused = [];
    private readonly WorkerMigrationForwarder _forwarder;
    private readonly List<Socket> _workerEnds = [];

    public WorkerMigrationForwarderTests() => _forwarder = new WorkerMigrationForwarder(2, _log, r => { lock (_refused) { _refused.Add(r); } });

    /// <summary>A fake worker: answers each line with <paramref name="answer"/>, recording what it was asked.</summary>
    private List<string> Worker(int index, Func<string, Task<string>> answer)
    {
        var (supervisor, worker) = WorkerChannel.CreatePair(inheritable: false);
        var socket = new Socket(worker);
        _workerEnds.Add(socket);
        var asked = new List<string>();
        _forwarder.Attach(index, supervisor);
        _ = WorkerChannel.ServeAsync(socket, line => { lock (asked) { asked.Add(line); } return answer(line); }, _log, CancellationToken.None);
        return asked;
    }

    [Fact]
    public async Task List_TwoWorkersWithTheSameIds_MergedWithUniqueIds()
    {
        Worker(0, _ => Task.FromResult("session 1 connect 198.18.0.9:1 198.18.1.1:1080 198.18.1.1:2 198.18.2.1:80 0 movable\nend\n"));
        Worker(1, _ => Task.FromResult("session 1 connect 198.18.0.8:1 198.18.1.1:1080 198.18.1.1:3 198.18.2.1:80 0 movable\nend\n"));
        var answer = await _forwarder.AnswerAsync("list");
        Assert.Equal("session 2 connect 198.18.0.9:1 198.18.1.1:1080 198.18.1.1:2 198.18.2.1:80 0 movable\n"
            + "session 3 connect 198.18.0.8:1 198.18.1.1:1080 198.18.1.1:3 198.18.2.1:80 0 movable\nend\n", answer);
    }

    [Fact]
    public async Task Move_IdsOfBothWorkers_EachAskedForItsOwnAndAnswersInRequestOrder()
    {
        var zero = Worker(0, _ => Task.FromResult("moved 1 5\nend\n"));
        var one = Worker(1, _ => Task.FromResult("stayed 1 gssapi-protected\nmoved 2 8\nend\n"));
        var answer = await _forwarder.AnswerAsync("move 198.18.0.3:1081 3 2 5");
        Assert.Equal("stayed 3 gssapi-protected\nmoved 2 5\nmoved 5 8\nend\n", answer);
        Assert.Equal(["move 198.18.0.3:1081 1"], zero);
        Assert.Equal(["move 198.18.0.3:1081 1 2"], one);
    }

    [Fact]
    public async Task Prepare_IdsOfBothWorkers_SplitAsMoveAndPreparedAnswersMerged()
    {
        var zero = Worker(0, _ => Task.FromResult("prepared 1\nend\n"));
        var one = Worker(1, _ => Task.FromResult("stayed 1 gssapi-protected\nprepared 2\nend\n"));
        var answer = await _forwarder.AnswerAsync("prepare 198.18.0.3:1081 3 2 5");
        Assert.Equal("stayed 3 gssapi-protected\nprepared 2\nprepared 5\nend\n", answer);
        Assert.Equal(["prepare 198.18.0.3:1081 1"], zero);
        Assert.Equal(["prepare 198.18.0.3:1081 1 2"], one);
    }

    [Fact]
    public async Task Move_WorkerDiesMidRequest_ItsSessionsStayWorkersWithoutWaitingOut()
    {
        Worker(0, _ => Task.FromResult("moved 1 5\nend\n"));
        Worker(1, async _ =>
        {
            // Dies while moving: its end of the channel closes, no answer comes.
            _workerEnds[1].Dispose();
            await Task.Delay(Timeout.Infinite);
            return "";
        });
        var clock = Stopwatch.StartNew();
        var answer = await _forwarder.AnswerAsync("move 198.18.0.3:1081 2 3");
        Assert.Equal("moved 2 5\nstayed 3 workers\nend\n", answer);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(4), $"answered after {clock.Elapsed}");
        Assert.Equal([MigrationRefusal.Workers], _refused);
    }

    [Fact]
    public async Task Move_NoWorkerAttached_EverySessionStaysWorkers()
    {
        Assert.Equal("stayed 4 workers\nstayed 7 workers\nend\n", await _forwarder.AnswerAsync("move 198.18.0.3:1081 4 7"));
    }

    [Fact]
    public async Task Key_WorkerStartedLater_LearnsTheRememberedKey()
    {
        var zero = Worker(0, _ => Task.FromResult("ok\n"));
        Assert.Equal("ok\n", await _forwarder.AnswerAsync(Key));
        var one = Worker(1, _ => Task.FromResult("ok\n"));
        for (var i = 0; i < 100 && one.Count == 0; i++)
        {
            await Task.Delay(20);
        }
        Assert.Equal([Key], zero);
        Assert.Equal([Key], one);
    }

    [Fact]
    public async Task Accept_AWorkerRefuses_ItsErrorIsTheAnswer()
    {
        Worker(0, _ => Task.FromResult("ok\n"));
        Worker(1, _ => Task.FromResult("error: accept: cannot listen on 198.18.0.3:1081: AddressAlreadyInUse\n"));
        Assert.Equal("error: accept: cannot listen on 198.18.0.3:1081: AddressAlreadyInUse\n", await _forwarder.AnswerAsync("accept 198.18.0.3:1081"));
    }

    [Fact]
    public async Task Answer_BadRequest_IsAnErrorWithoutAskingWorkers()
    {
        var zero = Worker(0, _ => Task.FromResult("ok\n"));
        Assert.StartsWith("error: ", await _forwarder.AnswerAsync("move nowhere 1"), StringComparison.Ordinal);
        Assert.Empty(zero);
    }

    public void Dispose()
    {
        _forwarder.Dispose();
        _workerEnds.ForEach(s => s.Dispose());
    }
}
