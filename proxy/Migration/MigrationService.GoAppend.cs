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
}
