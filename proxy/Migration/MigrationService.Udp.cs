using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Server;

namespace L2Balance.Proxy.Migration;

/// <summary>
/// The UDP association's path through a move (docs/design.md#udp-associations): one TCP leg (the
/// control connection) frozen and restored as a relay's, plus the association's UDP sockets bound again
/// on the new node to the same VIP ports, marked so its filter takes their datagrams.
/// </summary>
internal sealed partial class MigrationService
{
    /// <summary>The control connection frozen; the association stopped already (between datagrams).</summary>
    private static SessionState FreezeUdp(Outgoing o, UdpAssociationState udp)
    {
        var control = TcpRepair.Freeze(o.Session.ClientLeg);
        o.Frozen = true;
        return new SessionState(SessionKind.UdpAssociation, [control], [], [], udp);
    }

    /// <summary>
    /// Restores a UDP association silently: the control connection in repair mode, the relay and target-facing
    /// sockets bound to the old node's VIP ports (bind(2) without SO_REUSEADDR: a port held here refuses the move), all
    /// marked; null when ready, else why not. Reserves the association's slot (max UDP associations).
    /// </summary>
    private MigrationRefusal? RestoreUdp(ulong id, SessionState state, Dictionary<ulong, RestoredUdp> silentUdp, ref string? error)
    {
        var udp = state.Udp!.Value;
        if (silentUdp.ContainsKey(id) || SocksSession.MethodOf(udp.Method) is null)
        {
            error ??= $"session {id}: state refused (a second copy, or method {udp.Method})";
            return MigrationRefusal.RestoreFailed;
        }
        if (!_server.TryReserveUdpAssociation())
        {
            error ??= $"session {id}: the maximum of UDP associations is reached";
            return MigrationRefusal.RestoreFailed;
        }
        var copy = new RestoredUdp(_server, state);
        try
        {
            copy.Control = new Socket(state.Legs[0].Local.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            TcpRepair.Mark(copy.Control, RestoredMark);
            TcpRepair.Restore(copy.Control, state.Legs[0]);
            copy.Relay = BindMarked(udp.Relay);
            copy.Outbound4 = udp.Outbound4 is { } o4 ? BindMarked(o4) : null;
            copy.Outbound6 = udp.Outbound6 is { } o6 ? BindMarked(o6) : null;
            silentUdp[id] = copy;
            return null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Any failure before Go refuses the association: its old copy resumes.
            error ??= $"session {id}: {e.Message}";
            copy.Drop();
            return MigrationRefusal.RestoreFailed;
        }
    }

    private static Socket BindMarked(IPEndPoint at)
    {
        var socket = new Socket(at.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            TcpRepair.Mark(socket, RestoredMark);
            PortBinder.BindExclusive(socket, at);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// On Go: thaws the control connection and starts the association; on No-go drops the copy. True when it runs here.
    /// Go came, so the old copy is closed: an association that cannot go live here is lost (counted, logged, its control connection reset).
    /// </summary>
    private bool ThawOrDrop(EndPoint from, ulong session, RestoredUdp copy, bool go, ref string? error)
    {
        if (!go)
        {
            copy.Drop();
            return false;
        }
        try
        {
            TcpRepair.Thaw(copy.Control!, copy.State.Legs[0]);
            _server.AdoptMovedInUdp(copy.Control!, copy.State, copy.Relay!, copy.Outbound4, copy.Outbound6);
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Lost(from, session, copy.State, e, ref error);
            copy.Drop(reset: true);
            return false;
        }
    }

    /// <summary>A UDP association restored silently, waiting for Go: its sockets and its reserved slot.</summary>
    private sealed class RestoredUdp(ProxyServer server, SessionState state)
    {
        public SessionState State => state;

        public Socket? Control { get; set; }

        public Socket? Relay { get; set; }

        public Socket? Outbound4 { get; set; }

        public Socket? Outbound6 { get; set; }

        /// <summary>
        /// Never went live: the control connection closes without FIN or RST (with a RST when <paramref name="reset"/>: lost at Go),
        /// the UDP sockets simply close, the slot is freed.
        /// </summary>
        public void Drop(bool reset = false)
        {
            if (Control is { } control)
            {
                Action<Socket> close = reset ? TcpRepair.Abort : TcpRepair.CloseFrozen;
                close(control);
            }
            Relay?.Dispose();
            Outbound4?.Dispose();
            Outbound6?.Dispose();
            server.ReleaseUdpAssociation();
        }
    }
}
