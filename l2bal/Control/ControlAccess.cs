using System.Buffers.Binary;
using System.Net.Sockets;
using static L2Balance.Balancer.Interop.Accounts;

namespace L2Balance.Balancer.Control;

/// <summary>
/// The credentials the kernel stamped on the other end of a unix socket (SO_PEERCRED: those of the
/// process that connected, or that called listen() on the server's side; SO_PEERGROUPS: its
/// supplementary groups). A local process cannot forge them (unix(7)).
/// </summary>
internal sealed record PeerCredentials(int Pid, uint Uid, uint Gid, IReadOnlyList<uint> Groups)
{
    /// <summary>Most processes have a few groups; NGROUPS_MAX (65536) is the most the kernel returns.</summary>
    private const int FewGroups = 256;
    private const int MaxGroups = 65536;

    /// <summary>Reads the peer's credentials from a connected unix stream socket.</summary>
    /// <exception cref="SocketException">The socket is not a connected unix socket.</exception>
    public static PeerCredentials Of(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Span<byte> ucred = stackalloc byte[SizeOfUcred];
        socket.GetRawSocketOption(SOL_SOCKET, SO_PEERCRED, ucred);
        return new PeerCredentials(
            BinaryPrimitives.ReadInt32LittleEndian(ucred),
            BinaryPrimitives.ReadUInt32LittleEndian(ucred[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(ucred[8..]),
            GroupsOf(socket));
    }

    private static uint[] GroupsOf(Socket socket)
    {
        foreach (var count in new[] { FewGroups, MaxGroups })
        {
            var buffer = new byte[count * sizeof(uint)];
            try
            {
                var length = socket.GetRawSocketOption(SOL_SOCKET, SO_PEERGROUPS, buffer);
                var groups = new uint[length / sizeof(uint)];
                for (var i = 0; i < groups.Length; i++)
                {
                    groups[i] = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(i * sizeof(uint)));
                }
                return groups;
            }
            catch (SocketException)
            {
                // ERANGE: more groups than the buffer holds; try the largest.
            }
        }
        return [];
    }
}

/// <summary>What a control request does to the node.</summary>
internal enum ControlRequestKind
{
    /// <summary>Reads state only (status, owner): anyone on the node may ask.</summary>
    Read,

    /// <summary>Changes the node (drain, undrain, and anything not known to be a read): root or the control group.</summary>
    Change,
}

/// <summary>
/// Who may steer a node, as pure decisions (docs/design.md#control-and-status): the daemon serves
/// reads to anyone and changes to root or members of <c>--control-group</c>; the command side
/// talks only to a daemon run by root, by the daemon's account, or by the caller itself.
/// </summary>
internal static class ControlAccess
{
    /// <summary>The requests that only read; every other request needs the privilege of a change.</summary>
    public static ControlRequestKind Classify(string request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var verb = request.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        return verb is "status" or "owner" ? ControlRequestKind.Read : ControlRequestKind.Change;
    }

    /// <summary>The request's first word as logs and answers may show it: a lowercase word, else "?" (the text comes from any local user).</summary>
    public static string VerbOf(string request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var verb = request.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
        return verb.Length is > 0 and <= 16 && verb.All(c => c is (>= 'a' and <= 'z') or '-') ? verb : "?";
    }

    /// <summary>Whether the daemon serves <paramref name="kind"/> to <paramref name="peer"/>: a read to anyone, a change to root or a member (primary or supplementary) of <paramref name="changeGroup"/>.</summary>
    public static bool MayServe(ControlRequestKind kind, PeerCredentials peer, uint? changeGroup)
    {
        ArgumentNullException.ThrowIfNull(peer);
        return kind == ControlRequestKind.Read
            || peer.Uid == 0
            || (changeGroup is { } group && (peer.Gid == group || peer.Groups.Contains(group)));
    }

    /// <summary>
    /// Whether the command side believes the process listening on the control socket is the
    /// daemon: root, the daemon's account (<paramref name="daemonAccountUid"/>, null when it does
    /// not exist), or the caller itself, who could start its own daemon anyway.
    /// </summary>
    public static bool TrustsDaemon(uint listenerUid, uint callerUid, uint? daemonAccountUid) =>
        listenerUid == 0 || listenerUid == callerUid || listenerUid == daemonAccountUid;
}
