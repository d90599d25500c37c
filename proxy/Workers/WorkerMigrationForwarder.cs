using System.Net.Sockets;
using System.Text;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Migration;

namespace L2Balance.Proxy.Workers;

/// <summary>
/// <c>--workers N</c>: the supervisor's side of the migration control socket (docs/design.md#live-migration-design).
/// Each request goes to every worker over its <see cref="WorkerChannel"/> and the answers merge:
/// <c>key</c> and <c>accept</c> to all (remembered, and replayed to a worker when it is restarted;
/// each worker listens on the channel port with SO_REUSEPORT), <c>list</c> with ids made unique
/// (<see cref="WorkerSessionIds"/>), <c>move</c> split per worker. A worker that is gone or does not
/// answer in time leaves its sessions <c>stayed ID workers</c>: the wait is bounded.
/// </summary>
internal sealed class WorkerMigrationForwarder : IDisposable
{
    /// <summary>key, accept, list: a worker answers these at once.</summary>
    private static readonly TimeSpan QuickTimeout = TimeSpan.FromSeconds(5);

    /// <summary>A move in a worker takes at most about 10 s (MigrationService's pause, connect and ready timeouts), under the control socket's 30 s.</summary>
    private static readonly TimeSpan MoveTimeout = TimeSpan.FromSeconds(25);

    private readonly int _workers;
    private readonly ProxyLog _log;
    private readonly Action<MigrationRefusal> _count;
    private readonly Link?[] _links;
    private readonly object _gate = new();
    private string? _keyLine;
    private string? _acceptLine;

    public WorkerMigrationForwarder(int workers, ProxyLog log, Action<MigrationRefusal> count)
    {
        _workers = workers;
        _log = log;
        _count = count;
        _links = new Link?[workers];
    }

    /// <summary>A (re)started worker's channel: replaces the previous one, and learns the remembered key and accept address.</summary>
    public void Attach(int worker, Socket supervisorEnd)
    {
        var link = new Link(new WorkerChannel(supervisorEnd));
        string?[] replay;
        lock (_gate)
        {
            _links[worker]?.Dispose();
            _links[worker] = link;
            replay = [_keyLine, _acceptLine];
        }
        foreach (var line in replay.OfType<string>())
        {
            _ = ReplayAsync(link, worker, line);
        }
    }

    private async Task ReplayAsync(Link link, int worker, string line)
    {
        var answer = await link.RequestAsync(line, QuickTimeout).ConfigureAwait(false);
        if (answer is not null && answer.StartsWith("error:", StringComparison.Ordinal))
        {
            _log.MigrationsRefused($"worker {worker}", 0, "none", $"replaying '{line.Split(' ')[0]}': {answer.Trim()}");
        }
    }

    /// <summary>Answers one request line of the migration control socket for all workers.</summary>
    public async Task<string> AnswerAsync(string line)
    {
        var request = MigrationControlRequest.Parse(line, out var error);
        switch (request)
        {
            case MigrationControlRequest.Key or MigrationControlRequest.Accept:
                lock (_gate)
                {
                    if (request is MigrationControlRequest.Key)
                    {
                        _keyLine = line;
                    }
                    else
                    {
                        _acceptLine = line;
                    }
                }
                var answers = await AskAllAsync(_ => line, QuickTimeout).ConfigureAwait(false);
                // A worker that is gone learns it when it is restarted; one that refused says why.
                return answers.FirstOrDefault(a => a is not null && !a.StartsWith("ok", StringComparison.Ordinal)) ?? "ok\n";
            case MigrationControlRequest.List:
                var lists = await AskAllAsync(_ => line, QuickTimeout).ConfigureAwait(false);
                var text = new StringBuilder();
                for (var w = 0; w < _workers; w++)
                {
                    foreach (var session in (lists[w] ?? "").Split('\n'))
                    {
                        if (WorkerSessionIds.RewriteSessionLine(session, w, _workers) is { } rewritten)
                        {
                            text.Append(rewritten).Append('\n');
                        }
                    }
                }
                return text.Append("end\n").ToString();
            case MigrationControlRequest.Move move:
                return await SplitAsync("move", move.Peer.ToString(), move.Ids, MoveTimeout).ConfigureAwait(false);
            case MigrationControlRequest.Prepare prepare:
                // Split as its move will be, so each worker's move finds the channel it prepared.
                return await SplitAsync("prepare", prepare.Peer.ToString(), prepare.Ids, QuickTimeout).ConfigureAwait(false);
            default:
                return $"error: {error}\n";
        }
    }

    /// <summary><c>move</c> or <c>prepare</c>: each worker asked for its own ids in parallel, the answers merged in request order.</summary>
    private async Task<string> SplitAsync(string verb, string peer, IReadOnlyList<long> ids, TimeSpan timeout)
    {
        var split = WorkerSessionIds.SplitMove(ids, _workers);
        var answers = await AskAllAsync(w => split[w].Count == 0 ? null : $"{verb} {peer} {string.Join(' ', split[w])}", timeout).ConfigureAwait(false);
        var unanswered = 0;
        var merged = WorkerSessionIds.MergeMove(ids, _workers, answers, _ =>
        {
            unanswered++;
            _count(MigrationRefusal.Workers);
        });
        if (unanswered > 0)
        {
            var silent = Enumerable.Range(0, _workers).Where(w => split[w].Count > 0 && answers[w] is null);
            _log.MigrationsRefused(peer, 0, $"{MigrationRefusal.Workers.Word()} {unanswered}", $"no answer from worker {string.Join(", ", silent)} to {verb} (gone or later than {timeout.TotalSeconds:F0} s)");
        }
        return merged;
    }

    /// <summary>Each worker's answer to its line (null line: not asked), null where it is gone or late.</summary>
    private async Task<string?[]> AskAllAsync(Func<int, string?> lineOf, TimeSpan timeout)
    {
        Link?[] links;
        lock (_gate)
        {
            links = [.. _links];
        }
        var asks = links.Select((link, w) => lineOf(w) is { } line && link is not null ? link.RequestAsync(line, timeout) : Task.FromResult<string?>(null));
        return await Task.WhenAll(asks).ConfigureAwait(false);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var link in _links)
            {
                link?.Dispose();
            }
            Array.Clear(_links);
        }
    }

    /// <summary>One worker's channel: requests numbered, answers matched by number, all pending ones failed when it ends.</summary>
    private sealed class Link : IDisposable
    {
        private readonly WorkerChannel _channel;
        private readonly Dictionary<uint, TaskCompletionSource<string?>> _pending = [];
        private readonly CancellationTokenSource _stop = new();
        private uint _next;
        private bool _closed;

        public Link(WorkerChannel channel)
        {
            _channel = channel;
            _ = ReadAsync();
        }

        /// <summary>The worker's answer, or null when the channel ends or <paramref name="timeout"/> passes first.</summary>
        public async Task<string?> RequestAsync(string line, TimeSpan timeout)
        {
            var answer = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
            uint number;
            lock (_pending)
            {
                if (_closed)
                {
                    return null;
                }
                number = ++_next;
                _pending[number] = answer;
            }
            try
            {
                using var bound = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                bound.CancelAfter(timeout);
                await _channel.SendAsync(number, line, bound.Token).WaitAsync(bound.Token).ConfigureAwait(false);
                return await answer.Task.WaitAsync(bound.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return null;
            }
            finally
            {
                lock (_pending)
                {
                    _pending.Remove(number);
                }
            }
        }

        private async Task ReadAsync()
        {
            try
            {
                while (await _channel.ReceiveAsync(_stop.Token).ConfigureAwait(false) is { } message)
                {
                    TaskCompletionSource<string?>? waiting;
                    lock (_pending)
                    {
                        _pending.Remove(message.Number, out waiting);
                    }
                    // An answer nobody waits for any more (it came late) is dropped.
                    waiting?.TrySetResult(message.Text);
                }
            }
            catch (Exception e) when (e is InvalidDataException or SocketException or ObjectDisposedException or OperationCanceledException)
            {
                // The worker died (its end closed) or sent a bad message: it answers nothing more.
            }
            _channel.Dispose();
            lock (_pending)
            {
                _closed = true;
                foreach (var waiting in _pending.Values)
                {
                    waiting.TrySetResult(null);
                }
                _pending.Clear();
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _channel.Dispose();
            _stop.Dispose();
        }
    }
}
