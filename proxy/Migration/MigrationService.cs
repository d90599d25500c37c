using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Relay;
using L2Balance.Proxy.Server;

namespace L2Balance.Proxy.Migration;

/// <summary>
/// l2proxy's side of live migration (issue 19, docs/design.md#live-migration-design): answers the
/// requests of the migration control socket (<c>key</c>, <c>accept</c>, <c>list</c>, <c>move</c>), moves
/// sessions to a peer's l2proxy over the migration channel, and restores the sessions a peer moves here.
/// Per session, two phases keep one sender: the peer restores silently and answers Ready; this node
/// sends Go and closes its frozen copy, or resumes its relay when anything failed.
/// </summary>
internal sealed partial class MigrationService : IAsyncDisposable
{
    /// <summary>SO_MARK of every restored socket: the new node's filter accepts the packets of flows whose local socket carries it.</summary>
    public const uint RestoredMark = 0x4c320019;

    /// <summary>How long a relay may take to stop: it stops between chunks, so this is only reached on a stuck socket.</summary>
    private static readonly TimeSpan PauseTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Connecting and opening the channel to the peer: a peer that does not answer within this is unreachable.</summary>
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);

    /// <summary>From the last state sent to the last Ready: restoring is sub-millisecond per session (docs/benchmarks.md).</summary>
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long a silent restored copy waits for Go before it is dropped (the old node resumed or died).</summary>
    private static readonly TimeSpan GoTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The peer's answer to Prepare: it opens a packet socket, sub-millisecond.</summary>
    private static readonly TimeSpan PrepareTimeout = TimeSpan.FromSeconds(1);

    /// <summary>An idle channel from a peer closes after this.</summary>
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(60);

    private readonly ProxyServer _server;
    private readonly ProxyLog _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly object _gate = new();
    private readonly TcpAckSender _acks = new(RestoredMark);
    private byte[]? _key;
    private Socket? _acceptor;
    private IPEndPoint? _acceptAt;

    public MigrationService(ProxyServer server, ProxyLog log)
    {
        _server = server;
        _log = log;
    }

    private ProxyCounters Counters => _server.Counters;

    /// <summary>Listen on the channel port with SO_REUSEPORT: a worker of <c>--workers</c> shares it with its siblings.</summary>
    public bool ReusePort { get; init; }

    /// <summary>Answers one request line: the answer's lines, each ending in a newline.</summary>
    public async Task<string> AnswerAsync(string line)
    {
        var request = MigrationControlRequest.Parse(line, out var error);
        return request switch
        {
            MigrationControlRequest.Key key => SetKey(key.Value),
            MigrationControlRequest.Accept accept => StartAccepting(accept.At),
            MigrationControlRequest.List => List(),
            MigrationControlRequest.Move move => await MoveAsync(move).ConfigureAwait(false),
            MigrationControlRequest.Prepare prepare => await PrepareRequestAsync(prepare).ConfigureAwait(false),
            _ => $"error: {error}\n",
        };
    }

    private string SetKey(byte[] key)
    {
        var earlier = Interlocked.Exchange(ref _key, key);
        if (earlier is not null && !earlier.AsSpan().SequenceEqual(key))
        {
            // Channels kept for the next batch were opened with the earlier key: the next batch opens one with this key.
            DisposePrepared();
        }
        return "ok\n";
    }

    private string StartAccepting(IPEndPoint at)
    {
        lock (_gate)
        {
            if (at.Equals(_acceptAt))
            {
                return "ok\n";
            }
            var listener = new Socket(at.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                if (ReusePort)
                {
                    // SOL_SOCKET, SO_REUSEPORT (asm-generic/socket.h).
                    listener.SetRawSocketOption(1, 15, BitConverter.GetBytes(1));
                }
                listener.Bind(at);
                listener.Listen(64);
            }
            catch (SocketException e)
            {
                listener.Dispose();
                return $"error: accept: cannot listen on {at}: {e.SocketErrorCode}\n";
            }
            _acceptor?.Dispose();
            _acceptor = listener;
            _acceptAt = at;
            _ = AcceptLoopAsync(listener);
            return "ok\n";
        }
    }

    private string List()
    {
        var answer = new StringBuilder();
        foreach (var session in _server.Sessions.OrderBy(s => s.Id))
        {
            if (session.Movable() is not { } m)
            {
                continue;
            }
            var kind = m.Kind switch { MovableKind.Bind => "bind", MovableKind.Udp => "udp", _ => "connect" };
            var state = m.Stays is { } reason ? "stays=" + reason.Word() : "movable";
            answer.Append(CultureInfo.InvariantCulture, $"session {m.Id} {kind} {m.Client} {m.Local} {m.TargetLocal} {m.TargetRemote} {m.HeldBytes} {state}\n");
        }
        return answer.Append("end\n").ToString();
    }

    /// <summary>One session of a move: its relay's run, where it stopped, its frozen legs.</summary>
    private sealed class Outgoing(long id, SocksSession session, RelayRun run)
    {
        public long Id => id;

        public SocksSession Session => session;

        public RelayRun Run => run;

        public long Started { get; set; }

        public bool Frozen { get; set; }

        /// <summary>Go went out, or may have (its send failed): the peer's copy may run, so this one never resumes.</summary>
        public bool GoSent { get; set; }

        /// <summary>Resumed here: Go is never sent for it (both under a lock of this object).</summary>
        public bool Resumed { get; set; }

        /// <summary>The answer line, once decided.</summary>
        public string? Answer { get; set; }
    }

    private async Task<string> MoveAsync(MigrationControlRequest.Move move)
    {
        var answers = new Dictionary<long, string>();
        var refused = new SortedDictionary<string, int>(StringComparer.Ordinal);
        string? firstError = null;
        void Stay(long id, MigrationRefusal reason, string? error = null)
        {
            Counters.MigrationRefused(reason);
            // Called by the batch and by its reader of answers.
            lock (answers)
            {
                answers[id] = $"stayed {id} {reason.Word()}";
                refused[reason.Word()] = refused.GetValueOrDefault(reason.Word()) + 1;
                firstError ??= error;
            }
        }

        var key = Volatile.Read(ref _key);
        var outgoing = Candidates(move.Ids, key, Stay);

        if (outgoing.Count > 0)
        {
            // A prepare to this peer opened the channel and the capture already (MigrationService.Prepare.cs).
            var prepared = TakePrepared(move.Peer);
            MigrationChannel? channel = prepared?.Channel;
            try
            {
                channel ??= await ConnectAsync(move.Peer, key!).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or MigrationException or OperationCanceledException or TimeoutException)
            {
                foreach (var o in outgoing)
                {
                    Stay(o.Id, MigrationRefusal.PeerUnreachable, $"channel to {move.Peer}: {e.Message}");
                }
            }
            if (channel is not null)
            {
                var clean = false;
                try
                {
                    if (await PrepareRestAsync(channel, outgoing, prepared).ConfigureAwait(false) is { } unprepared)
                    {
                        outgoing.ForEach(o => Stay(o.Id, MigrationRefusal.PeerUnreachable, unprepared));
                    }
                    else
                    {
                        clean = await MoveBatchAsync(channel, outgoing, Stay).ConfigureAwait(false);
                    }
                }
                finally
                {
                    // Every message of the batch answered: the channel (and the peer's capture) serves the next batch to this peer.
                    if (clean)
                    {
                        KeepPrepared(move.Peer, new Prepared(channel, []));
                    }
                    else
                    {
                        channel.Dispose();
                    }
                }
                foreach (var o in outgoing.Where(o => o.Answer is not null))
                {
                    answers[o.Id] = o.Answer!;
                }
            }
        }

        int moved = outgoing.Count(o => o.Answer is not null && o.Answer.StartsWith("moved", StringComparison.Ordinal));
        if (refused.Count > 0)
        {
            _log.MigrationsRefused(move.Peer.ToString(), moved, string.Join(", ", refused.Select(p => $"{p.Key} {p.Value}")), firstError);
        }
        var text = new StringBuilder();
        foreach (var id in move.Ids.Distinct())
        {
            text.Append(answers[id]).Append('\n');
        }
        return text.Append("end\n").ToString();
    }

    private async Task<MigrationChannel> ConnectAsync(IPEndPoint peer, byte[] key)
    {
        var socket = new Socket(peer.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // Between the nodes' own addresses: from the one this node accepts migrations on, when it has one of the family.
            if (Volatile.Read(ref _acceptAt) is { } own && own.AddressFamily == peer.AddressFamily)
            {
                socket.Bind(new IPEndPoint(own.Address, 0));
            }
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(ConnectTimeout);
            await socket.ConnectAsync(peer, timeout.Token).ConfigureAwait(false);
            socket.NoDelay = true;
            return await MigrationChannel.OpenAsync(socket, key, initiator: true, timeout.Token).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Pauses every session of the batch, then per session: freeze both legs, send the state; a reader
    /// answers each Ready with Go (close the frozen copy: moved) or resumes the session (stayed).
    /// Whatever is not decided when the channel fails or times out resumes here: never sent Go, never thawed there.
    /// </summary>
    /// <returns>Whether the channel is clean: every state sent was answered and nothing failed on it, so it may carry another batch.</returns>
    private async Task<bool> MoveBatchAsync(MigrationChannel channel, List<Outgoing> outgoing, Action<long, MigrationRefusal, string?> stay)
    {
        try
        {
            return await MoveBatchCoreAsync(channel, outgoing, stay).ConfigureAwait(false);
        }
        finally
        {
            // Whatever failed on the way (docs/design.md#failure-paths-of-a-move): a paused session never waits forever.
            ResumeUndecided(outgoing, stay);
        }
    }

    /// <summary>Resumes every session of a batch that has no answer and was never sent Go: it never ran on the peer.</summary>
    private static void ResumeUndecided(List<Outgoing> outgoing, Action<long, MigrationRefusal, string?> stay)
    {
        foreach (var o in outgoing)
        {
            if (!o.Run.Pause.IsRequested)
            {
                // Never paused: its relay runs on, nothing to resume.
                stay(o.Id, MigrationRefusal.PeerUnreachable, "the move failed before this session paused");
                o.Answer = $"stayed {o.Id} {MigrationRefusal.PeerUnreachable.Word()}";
                continue;
            }
            // A no-op for a session decided already (moved or resumed).
            Resume(o, MigrationRefusal.PeerUnreachable, stay, "the move failed before this session was decided");
        }
    }

    private async Task<bool> MoveBatchCoreAsync(MigrationChannel channel, List<Outgoing> outgoing, Action<long, MigrationRefusal, string?> stay)
    {
        using var sendLock = new SemaphoreSlim(1);
        var sent = new Dictionary<ulong, Outgoing>();
        var allSent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var readyTimeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var reader = ReadReadiesAsync(channel, sent, allSent.Task, sendLock, stay, readyTimeout.Token);

        foreach (var o in outgoing)
        {
            o.Started = Stopwatch.GetTimestamp();
            o.Run.Pause.Request();
        }
        var writer = new ArrayBufferWriter<byte>();
        string? channelError = null;
        foreach (var o in outgoing)
        {
            RelayResult stopped;
            try
            {
                stopped = await o.Run.Stopped.WaitAsync(PauseTimeout).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                Resume(o, MigrationRefusal.NotEstablished, stay, "the relay did not stop");
                continue;
            }
            if (stopped.Up.End != PumpEnd.Paused || stopped.Down.End != PumpEnd.Paused)
            {
                // Ended, or half-closed while pausing: a FIN cannot be frozen; the open direction goes on here.
                Resume(o, MigrationRefusal.NotEstablished, stay, null);
                continue;
            }
            if (channelError is not null)
            {
                Resume(o, MigrationRefusal.PeerUnreachable, stay, channelError);
                continue;
            }
            byte[] record;
            try
            {
                // A UDP association has one leg: its control connection.
                if (!TcpRepair.IsEstablished(o.Session.ClientLeg) || (o.Session.TargetLeg is { } targetLeg && !TcpRepair.IsEstablished(targetLeg)))
                {
                    Resume(o, MigrationRefusal.NotEstablished, stay, null);
                    continue;
                }
                var state = Freeze(o, stopped);
                writer.ResetWrittenCount();
                SessionStateCodec.Write(state, writer);
                if (writer.WrittenCount + 9 > MigrationRecords.MaxPlaintextLength)
                {
                    Resume(o, MigrationRefusal.TooLarge, stay, null);
                    continue;
                }
                record = MigrationMessages.State((ulong)o.Id, writer.WrittenSpan);
            }
            catch (Exception e) when (e is MigrationException or SocketException or ObjectDisposedException)
            {
                Resume(o, MigrationRefusal.RestoreFailed, stay, $"freeze: {e.Message}");
                continue;
            }
            await sendLock.WaitAsync().ConfigureAwait(false);
            try
            {
                lock (sent)
                {
                    sent[(ulong)o.Id] = o;
                }
                // Bounded: a peer that stops reading must not keep the batch's sessions paused.
                using var sendTimeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                sendTimeout.CancelAfter(ReadyTimeout);
                await channel.SendAsync(record, sendTimeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException or MigrationException or IOException)
            {
                channelError = e.Message;
            }
            finally
            {
                sendLock.Release();
            }
        }
        allSent.SetResult();
        lock (sent)
        {
            if (sent.Values.All(o => o.Answer is not null))
            {
                // Every session sent is answered: the reader waits for nothing more.
                readyTimeout.Cancel();
            }
        }
        readyTimeout.CancelAfter(ReadyTimeout);
        var readerFailed = await reader.ConfigureAwait(false);
        lock (sent)
        {
            // Clean: nothing failed on the channel and every state sent has its answer (the reader may have been cancelled for that).
            var clean = !readerFailed && channelError is null && sent.Values.All(o => o.Answer is not null);
            // No Ready in time, or the channel broke: never sent Go, so the peer drops its silent copy.
            foreach (var o in sent.Values.Where(o => o.Answer is null))
            {
                Resume(o, MigrationRefusal.PeerUnreachable, stay, channelError ?? "no answer from the peer");
            }
            return clean;
        }
    }

    /// <returns>True when the channel failed or a message was wrong (not when its wait was cancelled: the caller decides by the answers).</returns>
    private async Task<bool> ReadReadiesAsync(MigrationChannel channel, Dictionary<ulong, Outgoing> sent, Task allSent, SemaphoreSlim sendLock,
        Action<long, MigrationRefusal, string?> stay, CancellationToken timeout)
    {
        await Task.Yield();
        try
        {
            while (true)
            {
                lock (sent)
                {
                    if (allSent.IsCompleted && sent.Values.All(o => o.Answer is not null))
                    {
                        return false;
                    }
                }
                var bytes = await channel.ReceiveAsync(timeout).ConfigureAwait(false);
                if (MigrationMessages.TryParse(bytes, out var message) != ParseStatus.Ok || message.Type != MigrationMessageType.Ready)
                {
                    throw new MigrationException("migration channel: unexpected message from the peer");
                }
                Outgoing? o;
                lock (sent)
                {
                    if (!sent.TryGetValue(message.Session, out o) || o.Answer is not null)
                    {
                        throw new MigrationException($"migration channel: Ready for session {message.Session}, which was not sent");
                    }
                }
                if (!message.Ok)
                {
                    Resume(o, MigrationRefusals.Parse(message.Reason) ?? MigrationRefusal.RestoreFailed, stay, $"the peer: {message.Reason}");
                    continue;
                }
                lock (o)
                {
                    if (o.Resumed)
                    {
                        // Resumed here meanwhile (the batch failed): the peer's copy waits for a Go that never comes.
                        continue;
                    }
                    o.GoSent = true;
                }
                await sendLock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
                Exception? goFailed = null;
                try
                {
                    using var goTimeout = new CancellationTokenSource(ReadyTimeout);
                    await channel.SendAsync(MigrationMessages.Go(message.Session, go: true), goTimeout.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException or MigrationException or IOException)
                {
                    // Part of Go may have reached the peer, which then runs the session: resuming here could make two senders.
                    goFailed = e;
                }
                finally
                {
                    sendLock.Release();
                }
                // Go is out (or may be): from here the peer's copy is the session; this one closes without a FIN or RST.
                var pause = Stopwatch.GetElapsedTime(o.Started);
                TcpRepair.CloseFrozen(o.Session.ClientLeg);
                if (o.Session.TargetLeg is { } targetLeg)
                {
                    TcpRepair.CloseFrozen(targetLeg);
                }
                Counters.MigratedOut();
                lock (sent)
                {
                    o.Answer = string.Create(CultureInfo.InvariantCulture, $"moved {o.Id} {(long)Math.Ceiling(pause.TotalMilliseconds)}");
                }
                o.Run.Decide(moved: true);
                if (goFailed is not null)
                {
                    throw new MigrationException($"migration channel: Go for session {o.Id}: {goFailed.Message}", goFailed);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Timed out, or cancelled once every state was answered: the caller tells which by the answers.
            return false;
        }
        catch (Exception e) when (e is MigrationException or SocketException or ObjectDisposedException or IOException)
        {
            // The callers resume every session without an answer.
            return true;
        }
    }

    private static SessionState Freeze(Outgoing o, RelayResult stopped)
    {
        if (o.Session.UdpStateForMove() is { } udp)
        {
            return FreezeUdp(o, udp);
        }
        var client = TcpRepair.Freeze(o.Session.ClientLeg);
        o.Frozen = true;
        TcpLegState target;
        try
        {
            target = TcpRepair.Freeze(o.Session.TargetLeg!);
        }
        catch
        {
            TcpRepair.Unfreeze(o.Session.ClientLeg);
            o.Frozen = false;
            throw;
        }
        return new SessionState(SessionKind.TcpRelay, [client, target], stopped.Up.Held ?? [], stopped.Down.Held ?? [], null);
    }

    /// <summary>The session stays: its legs leave repair mode and its relay resumes with what it held.</summary>
    private static void Resume(Outgoing o, MigrationRefusal reason, Action<long, MigrationRefusal, string?> stay, string? error)
    {
        lock (o)
        {
            if (o.GoSent || o.Resumed)
            {
                // Decided already: a session that may run on the peer never resumes here too.
                return;
            }
            o.Resumed = true;
        }
        if (o.Frozen)
        {
            try
            {
                TcpRepair.Unfreeze(o.Session.ClientLeg);
                if (o.Session.TargetLeg is { } targetLeg)
                {
                    TcpRepair.Unfreeze(targetLeg);
                }
            }
            catch (Exception e) when (e is MigrationException or ObjectDisposedException)
            {
                // A socket closed meanwhile (session aborted): the relay ends on its own.
                error ??= e.Message;
            }
            o.Frozen = false;
        }
        stay(o.Id, reason, error);
        o.Answer = $"stayed {o.Id} {reason.Word()}";
        o.Run.Decide(moved: false);
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket peer;
            try
            {
                peer = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                // Replaced by another accept address, or stopping.
                return;
            }
            _ = ReceiveAsync(peer);
        }
    }

    /// <summary>
    /// Serves one channel from a peer: restores each state silently and answers Ready, thaws it on Go
    /// and hands it to the relay, drops it on No-go, on the Go timeout, or when the channel ends.
    /// </summary>
    private async Task ReceiveAsync(Socket socket)
    {
        var from = socket.RemoteEndPoint!;
        var silent = new Dictionary<ulong, (Socket Client, Socket Target, SessionState State)>();
        var silentUdp = new Dictionary<ulong, RestoredUdp>();
        SegmentCapture? capture = null;
        int restored = 0, refused = 0;
        string? error = null;
        MigrationChannel? channel = null;
        try
        {
            var key = Volatile.Read(ref _key) ?? throw new MigrationException("no channel key (key)");
            socket.NoDelay = true;
            using (var open = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
            {
                open.CancelAfter(ConnectTimeout);
                channel = await MigrationChannel.OpenAsync(socket, key, initiator: false, open.Token).ConfigureAwait(false);
            }
            while (true)
            {
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                wait.CancelAfter(silent.Count + silentUdp.Count > 0 ? GoTimeout : IdleTimeout);
                var bytes = await channel.ReceiveAsync(wait.Token).ConfigureAwait(false);
                if (MigrationMessages.TryParse(bytes, out var message) != ParseStatus.Ok)
                {
                    throw new MigrationException("migration channel: malformed message");
                }
                if (message.Type == MigrationMessageType.State)
                {
                    var refusal = Restore(message, silent, silentUdp, capture, ref error);
                    refused += refusal is null ? 0 : 1;
                    await channel.SendAsync(MigrationMessages.Ready(message.Session, refusal), _stop.Token).ConfigureAwait(false);
                }
                else if (message.Type == MigrationMessageType.Prepare)
                {
                    capture ??= OpenCapture(ref error);
                    capture?.Watch(MigrationFlows.TryRead(message.Payload.Span) ?? throw new MigrationException("migration channel: malformed Prepare"));
                    await channel.SendAsync(MigrationMessages.Prepared(message.Session, capture is not null), _stop.Token).ConfigureAwait(false);
                }
                else if (message.Type == MigrationMessageType.Go && silent.Remove(message.Session, out var copy))
                {
                    if (message.Ok && Thaw(from, message.Session, copy, capture, ref error))
                    {
                        restored++;
                    }
                    else if (!message.Ok)
                    {
                        TcpRepair.CloseFrozen(copy.Client);
                        TcpRepair.CloseFrozen(copy.Target);
                    }
                }
                else if (message.Type == MigrationMessageType.Go && silentUdp.Remove(message.Session, out var udpCopy))
                {
                    restored += ThawOrDrop(from, message.Session, udpCopy, message.Ok, ref error) ? 1 : 0;
                }
                else
                {
                    throw new MigrationException($"migration channel: unexpected {message.Type} for session {message.Session}");
                }
                if (message.Type == MigrationMessageType.Go && silent.Count + silentUdp.Count == 0 && capture is not null)
                {
                    // A batch done: its frames are counted now, not when the channel (kept for the next batch) closes.
                    CountCapture(capture);
                }
            }
        }
        catch (Exception e) when (e is MigrationException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The end of every channel: the peer closes it after its batch. A copy still silent never got Go.
            if (silent.Count + silentUdp.Count > 0 || e is not MigrationException { Message: "migration channel: closed by the peer mid-record" })
            {
                error ??= e.Message;
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A fault of this code, never the peer's: logged whole. The copies still silent never got Go: dropped below.
            _log.Unexpected($"the migration channel from {from}", e);
            error ??= e.Message;
        }
        finally
        {
            foreach (var copy in silent.Values)
            {
                TcpRepair.CloseFrozen(copy.Client);
                TcpRepair.CloseFrozen(copy.Target);
            }
            foreach (var copy in silentUdp.Values)
            {
                copy.Drop();
            }
            channel?.Dispose();
            socket.Dispose();
            if (capture is not null)
            {
                CountCapture(capture);
                capture.Dispose();
            }
            if (restored + refused > 0 || error is not null)
            {
                _log.MigrationsReceived(from, restored, refused + silent.Count + silentUdp.Count, error);
            }
        }
    }

    /// <summary>The capture's frames and kernel drops since the last count (PACKET_STATISTICS resets on read).</summary>
    private void CountCapture(SegmentCapture capture)
    {
        var (frames, drops) = capture.Statistics();
        Counters.MigrationCapture(frames, drops);
    }

    /// <summary>Restores a state's legs in repair mode, marked; null when both are ready, else why not.</summary>
    private MigrationRefusal? Restore(MigrationMessage message, Dictionary<ulong, (Socket Client, Socket Target, SessionState State)> silent,
        Dictionary<ulong, RestoredUdp> silentUdp, SegmentCapture? capture, ref string? error)
    {
        if (SessionStateCodec.TryParse(message.Payload.Span, out var state, out var reason) == ParseStatus.Ok
            && state!.Kind == SessionKind.UdpAssociation && !silent.ContainsKey(message.Session))
        {
            return RestoreUdp(message.Session, state, silentUdp, ref error);
        }
        if (state is null || state.Kind != SessionKind.TcpRelay || silent.ContainsKey(message.Session) || silentUdp.ContainsKey(message.Session))
        {
            error ??= $"session {message.Session}: state refused ({reason})";
            return MigrationRefusal.RestoreFailed;
        }
        var sockets = new List<Socket>(2);
        var restored = new List<TcpLegState>(2);
        try
        {
            foreach (var leg in state.Legs)
            {
                var socket = new Socket(leg.Local.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(socket);
                restored.Add(WithCaptured(leg, capture));
                // Unmarked until Go: the filter drops the flow's input meanwhile, so a copy that dies silent never acknowledged a byte.
                // Its sent bytes wait for Go too: in flight, they would arm the retransmission timer, and an unmarked retransmission
                // makes conntrack take the flow as established, which the filter accepts ahead of the mark (input before Go).
                TcpRepair.Restore(socket, restored[^1], sentQueue: false);
            }
            // Kept as restored (rcv_nxt past the restore's append): Go checks the sockets are still there.
            silent[message.Session] = (sockets[0], sockets[1], state with { Legs = restored });
            return null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Any failure before Go refuses the session: its old copy resumes.
            error ??= $"session {message.Session}: {e.Message}";
            sockets.ForEach(TcpRepair.CloseFrozen);
            return MigrationRefusal.RestoreFailed;
        }
    }

    /// <summary>
    /// Thaws both legs of a restored copy and starts its relay with what the old relay held. Go came, so the old copy is
    /// closed: a copy that cannot go live here is lost, counted and logged, its legs reset so the ends learn at once.
    /// </summary>
    private bool Thaw(EndPoint from, ulong session, (Socket Client, Socket Target, SessionState State) copy, SegmentCapture? capture, ref string? error)
    {
        try
        {
            GoLive(copy.Client, copy.State.Legs[0], capture);
            GoLive(copy.Target, copy.State.Legs[1], capture);
            copy.Client.NoDelay = true;
            copy.Target.NoDelay = true;
            var resume = new RelayResult(
                new PumpResult(0, PumpEnd.Paused, SocketError.Success, copy.State.HeldToTarget),
                new PumpResult(0, PumpEnd.Paused, SocketError.Success, copy.State.HeldToClient));
            _server.AdoptMovedIn(copy.Client, copy.Target, copy.State, resume);
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Lost(from, session, copy.State, e, ref error);
            TcpRepair.Abort(copy.Client);
            TcpRepair.Abort(copy.Target);
            return false;
        }
    }

    /// <summary>A session lost at Go (docs/design.md#failure-paths-of-a-move): counted, logged with its client (an unexpected error with its stack).</summary>
    private void Lost(EndPoint from, ulong session, SessionState state, Exception e, ref string? error)
    {
        error ??= $"thaw: {e.Message}";
        Counters.MigrationLost();
        _log.MigrationLost(from, session, state.Legs[0].Remote.ToString(), e is MigrationException or SocketException ? e.Message : e.ToString());
    }

    /// <summary>
    /// Old node, before any pause: announces the batch's inbound flows (both legs) so the peer captures
    /// them while they move (docs/design.md#the-pause); waits for its answer, so capture precedes the freeze.
    /// Null when it answered, else why not: then nothing was paused and the batch's sessions stay.
    /// </summary>
    private static async Task<string?> PrepareAsync(MigrationChannel channel, List<Outgoing> outgoing)
    {
        var flows = new List<InboundFlow>(2 * outgoing.Count);
        foreach (var o in outgoing)
        {
            // A UDP association has one TCP leg (its control connection), no target leg.
            foreach (var leg in new[] { o.Session.ClientLeg, o.Session.TargetLeg }.OfType<Socket>())
            {
                if (leg.RemoteEndPoint is IPEndPoint remote && leg.LocalEndPoint is IPEndPoint local)
                {
                    flows.Add(InboundFlow.Of(remote, local));
                }
            }
        }
        using var timeout = new CancellationTokenSource(PrepareTimeout);
        try
        {
            await channel.SendAsync(MigrationMessages.Prepare((ulong)outgoing.Count, MigrationFlows.Write(flows)), timeout.Token).ConfigureAwait(false);
            var answer = await channel.ReceiveAsync(timeout.Token).ConfigureAwait(false);
            if (MigrationMessages.TryParse(answer, out var message) != ParseStatus.Ok || message.Type != MigrationMessageType.Prepared)
            {
                return "migration channel: no Prepared from the peer";
            }
            return null;
        }
        catch (Exception e) when (e is MigrationException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            return $"prepare: {e.Message}";
        }
    }

    /// <summary>New node: the capture of a channel's announced flows, or null (logged) without CAP_NET_RAW.</summary>
    private SegmentCapture? OpenCapture(ref string? error)
    {
        try
        {
            return SegmentCapture.Open(Counters.MigrationCaptureUnparsed);
        }
        catch (SocketException e)
        {
            error ??= $"capture: socket(AF_PACKET): {e.SocketErrorCode}";
            return null;
        }
    }

    /// <summary>
    /// The leg with what its end sent while the flow moved appended to its receive queue, contiguous
    /// from the old socket's rcv_nxt: restored before the socket is connected, so no segment reaches it first.
    /// </summary>
    private TcpLegState WithCaptured(TcpLegState leg, SegmentCapture? capture)
    {
        if (capture is null)
        {
            return leg;
        }
        var bytes = ReceiveAppend.Contiguous(leg.RecvSeq, capture.Peek(InboundFlow.Of(leg.Remote, leg.Local)), SegmentCapture.MaxBytesPerFlow);
        if (bytes.Length == 0)
        {
            return leg;
        }
        Counters.MigrationCaptured(bytes.Length);
        return leg with { ReceiveQueue = [.. leg.ReceiveQueue, .. bytes], RecvSeq = leg.RecvSeq + (uint)bytes.Length };
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        DisposePrepared();
        lock (_gate)
        {
            _acceptor?.Dispose();
        }
        _acks.Dispose();
        _stop.Dispose();
    }
}
