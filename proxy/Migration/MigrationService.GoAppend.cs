using System.Net.Sockets;

namespace L2Balance.Proxy.Migration;

/// <summary>The pause's second window (docs/design.md#the-pause): what the ends sent between the restore and Go.</summary>
internal sealed partial class MigrationService
{
    /// <summary>
    /// At Go, before the mark: appends the payload captured since the restore, contiguous from the socket's rcv_nxt now,
    /// and stops watching the flow. Until the mark the filter drops the flow's input, so rcv_nxt cannot move between the
    /// read and the append; a leg whose rcv_nxt is not where the restore left it got input some other way: counted, nothing appended.
    /// </summary>
    private void AppendAtGo(Socket socket, TcpLegState restored, SegmentCapture? capture)
    {
        if (capture is null)
        {
            return;
        }
        var segments = capture.Take(InboundFlow.Of(restored.Remote, restored.Local));
        if (segments.Count == 0)
        {
            return;
        }
        var bytes = ReceiveAppend.AtGo(restored.RecvSeq, TcpRepair.ReceiveNext(socket), segments, SegmentCapture.MaxBytesPerFlow);
        if (bytes is null)
        {
            Counters.MigrationGoAppendSkipped();
            return;
        }
        if (bytes.Length > 0)
        {
            TcpRepair.AppendReceived(socket, bytes);
            Counters.MigrationCapturedAtGo(bytes.Length);
        }
    }

    /// <summary>
    /// One leg at Go: its sent bytes back in its send queue, the append, then the mark at once (a segment arriving between the capture's take and the mark
    /// reaches neither copy: counted late), then the thaw with the acknowledgement its end is owed.
    /// </summary>
    private void GoLive(Socket socket, TcpLegState leg, SegmentCapture? capture)
    {
        // Deferred from the restore: a silent copy with bytes in flight would retransmit them unmarked (MigrationService.Restore).
        TcpRepair.RestoreSentQueue(socket, leg);
        AppendAtGo(socket, leg, capture);
        TcpRepair.Mark(socket, RestoredMark);
        if (capture?.Live(InboundFlow.Of(leg.Remote, leg.Local)) is > 0 and var late)
        {
            Counters.MigrationCaptureLate(late);
        }
        var point = TcpRepair.AckPoint(socket, leg);
        TcpRepair.Thaw(socket, leg, () => Acknowledge(leg, point));
    }

    /// <summary>Right after a leg's thaw: the acknowledgement its end is owed (appended bytes, a delayed ACK the old socket never sent); counted.</summary>
    private void Acknowledge(TcpLegState leg, TcpAckPoint point)
    {
        if (_acks.Send(leg.Local, leg.Remote, point))
        {
            Counters.MigrationAckSent();
        }
        else
        {
            Counters.MigrationAckFailed();
        }
    }
}
