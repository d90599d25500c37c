using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Control;

namespace L2Balance.Balancer.Migration;

/// <summary>
/// The client of l2proxy's migration control socket: one request line, the answer lines up to
/// <c>end</c> (or one <c>error: …</c> line), then close. Before a word is sent the listener's
/// credentials are checked (root, the account <see cref="ProxyAccount"/>, or this process's user), so a
/// local user squatting the name never receives the channel key.
/// </summary>
internal sealed class MigrationProxyClient(string path, TimeSpan timeout) : IMigrationProxy
{
    /// <summary>The proxy's socket by default: an abstract name, per network namespace as l2bal's own.</summary>
    public const string DefaultPath = "@l2proxy-migrate";

    /// <summary>The account the package runs l2proxy as (packaging/systemd/l2proxy.service).</summary>
    public const string ProxyAccount = "l2proxy";

    /// <summary>Longest answer read (a list of tens of thousands of sessions fits).</summary>
    private const int MaxAnswerBytes = 16 << 20;

    public void Key(uint epoch, ReadOnlySpan<byte> channelKey) =>
        ExpectOk(string.Create(CultureInfo.InvariantCulture, $"key {epoch} {Convert.ToHexStringLower(channelKey)}"), "key");

    public void Accept(IPEndPoint at)
    {
        ArgumentNullException.ThrowIfNull(at);
        ExpectOk($"accept {at}", "accept");
    }

    public IReadOnlyList<ProxySession> List()
    {
        var sessions = new List<ProxySession>();
        foreach (var line in Ask("list", listed: true))
        {
            if (!ProxySession.TryParse(line, out var session))
            {
                throw new MigrationProxyException($"l2proxy listed a line outside the protocol: '{Clip(line)}'");
            }
            sessions.Add(session!);
        }
        return sessions;
    }

    public IReadOnlyList<MoveOutcome> Move(IPEndPoint peer, IReadOnlyList<string> ids)
    {
        ArgumentNullException.ThrowIfNull(peer);
        ArgumentNullException.ThrowIfNull(ids);
        var outcomes = new List<MoveOutcome>();
        foreach (var line in Ask($"move {peer} {string.Join(' ', ids)}", listed: true))
        {
            outcomes.Add(ParseOutcome(line) ?? throw new MigrationProxyException($"l2proxy answered a move with a line outside the protocol: '{Clip(line)}'"));
        }
        return outcomes;
    }

    public IReadOnlyList<PrepareOutcome> Prepare(IPEndPoint peer, IReadOnlyList<string> ids)
    {
        ArgumentNullException.ThrowIfNull(peer);
        ArgumentNullException.ThrowIfNull(ids);
        var outcomes = new List<PrepareOutcome>();
        foreach (var line in Ask($"prepare {peer} {string.Join(' ', ids)}", listed: true))
        {
            outcomes.Add(ParsePrepared(line) ?? throw new MigrationProxyException($"l2proxy answered a prepare with a line outside the protocol: '{Clip(line)}'"));
        }
        return outcomes;
    }

    /// <summary><c>prepared ID</c> or <c>stayed ID REASON</c>; null for anything else.</summary>
    public static PrepareOutcome? ParsePrepared(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        if (line.Split(' ') is ["prepared", var id] && ProxySession.IsToken(id, ProxySession.MaxIdLength))
        {
            return new PrepareOutcome(id, null);
        }
        return ParseOutcome(line) is { Moved: false } stayed ? new PrepareOutcome(stayed.Id, stayed.Reason) : null;
    }

    /// <summary><c>moved ID PAUSE-MS</c> or <c>stayed ID REASON</c>; null for anything else.</summary>
    public static MoveOutcome? ParseOutcome(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var f = line.Split(' ');
        if (f.Length != 3 || !ProxySession.IsToken(f[1], ProxySession.MaxIdLength))
        {
            return null;
        }
        if (f[0] == "moved" && int.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var pause))
        {
            return new MoveOutcome(f[1], true, pause, null);
        }
        return f[0] == "stayed" && ProxySession.IsToken(f[2], 32) ? new MoveOutcome(f[1], false, 0, f[2]) : null;
    }

    private void ExpectOk(string request, string verb)
    {
        var lines = Ask(request, listed: false);
        if (lines is not ["ok"])
        {
            throw new MigrationProxyException($"l2proxy answered '{verb}' with '{Clip(string.Join(" | ", lines))}', not ok");
        }
    }

    /// <summary>Sends one line; returns the answer's lines (without the closing <c>end</c> when <paramref name="listed"/>).</summary>
    private List<string> Ask(string request, bool listed)
    {
        string text;
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.SendTimeout = socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
            socket.Connect(new UnixDomainSocketEndPoint(path.StartsWith('@') ? "\0" + path[1..] : path));
            var listener = PeerCredentials.Of(socket);
            if (!ControlAccess.TrustsDaemon(listener.Uid, SystemAccounts.EffectiveUserId, SystemAccounts.UserId(ProxyAccount)))
            {
                throw new MigrationProxyException(string.Create(CultureInfo.InvariantCulture,
                    $"refusing to talk to {path}: it is held by uid {listener.Uid} (pid {listener.Pid}), not by root, user '{ProxyAccount}' or l2bal's own"));
            }
            socket.Send(Encoding.UTF8.GetBytes(request + "\n"));
            text = ReadAll(socket);
        }
        catch (SocketException e)
        {
            throw new MigrationProxyException($"l2proxy's migration socket {path}: {e.Message}", e);
        }
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
        if (lines is [var only] && only.StartsWith("error: ", StringComparison.Ordinal))
        {
            throw new MigrationProxyException($"l2proxy: {Clip(only[7..])}");
        }
        if (listed)
        {
            if (lines.Count == 0 || lines[^1] != "end")
            {
                throw new MigrationProxyException("l2proxy's answer ended without 'end'");
            }
            lines.RemoveAt(lines.Count - 1);
        }
        return lines;
    }

    private static string ReadAll(Socket socket)
    {
        var answer = new MemoryStream();
        var buffer = new byte[65536];
        int n;
        while ((n = socket.Receive(buffer)) > 0)
        {
            if (answer.Length + n > MaxAnswerBytes)
            {
                throw new MigrationProxyException($"l2proxy's answer exceeds {MaxAnswerBytes} bytes");
            }
            answer.Write(buffer, 0, n);
        }
        return Encoding.UTF8.GetString(answer.GetBuffer(), 0, (int)answer.Length);
    }

    private static string Clip(string text) => text.Length <= 200 ? text : text[..200] + "…";
}
