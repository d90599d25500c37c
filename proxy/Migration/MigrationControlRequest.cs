using System.Globalization;
using System.Net;

namespace L2Balance.Proxy.Migration;

/// <summary>A request line of the migration control socket (docs/design.md#live-migration-design).</summary>
internal abstract record MigrationControlRequest
{
    /// <summary>The port a node's l2proxy accepts migrations on when <c>accept</c> names none.</summary>
    public const int DefaultChannelPort = 1081;

    /// <summary>The most sessions one <c>move</c> names: a batch, not a whole node at once.</summary>
    public const int MaxMoveIds = 4096;

    /// <summary><c>key EPOCH HEX64</c>: the channel key from l2bal.</summary>
    public sealed record Key(uint Epoch, byte[] Value) : MigrationControlRequest;

    /// <summary><c>accept ADDR:PORT</c>: listen there for migrations from peers.</summary>
    public sealed record Accept(IPEndPoint At) : MigrationControlRequest;

    /// <summary><c>list</c>: the established sessions.</summary>
    public sealed record List : MigrationControlRequest;

    /// <summary><c>move PEER:PORT ID...</c>: move these sessions to the peer's l2proxy.</summary>
    public sealed record Move(IPEndPoint Peer, IReadOnlyList<long> Ids) : MigrationControlRequest;

    /// <summary><c>prepare PEER:PORT ID...</c>: open the channel and have the peer capture these sessions' flows before l2bal drops them.</summary>
    public sealed record Prepare(IPEndPoint Peer, IReadOnlyList<long> Ids) : MigrationControlRequest;

    /// <summary>Parses one line; null with <paramref name="error"/> for anything else (the answer's <c>error: </c> text).</summary>
    public static MigrationControlRequest? Parse(string line, out string error)
    {
        ArgumentNullException.ThrowIfNull(line);
        error = "";
        var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        switch (words.FirstOrDefault())
        {
            case "key" when words.Length == 3:
                if (!uint.TryParse(words[1], NumberStyles.None, CultureInfo.InvariantCulture, out var epoch))
                {
                    error = "key: the epoch is not a whole number";
                    return null;
                }
                if (words[2].Length != 64 || !words[2].All(Uri.IsHexDigit))
                {
                    error = "key: the key is not 64 hex digits";
                    return null;
                }
                return new Key(epoch, Convert.FromHexString(words[2]));
            case "accept" when words.Length == 2:
                return Endpoint(words[1], "accept", out var at, out error) ? new Accept(at) : null;
            case "list" when words.Length == 1:
                return new List();
            case "move" or "prepare" when words.Length >= 3:
                var verb = words[0];
                if (!Endpoint(words[1], verb, out var peer, out error))
                {
                    return null;
                }
                if (words.Length - 2 > MaxMoveIds)
                {
                    error = $"{verb}: at most {MaxMoveIds} sessions per request";
                    return null;
                }
                var ids = new List<long>(words.Length - 2);
                foreach (var word in words.Skip(2))
                {
                    if (!long.TryParse(word, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                    {
                        error = $"{verb}: a session id is not a whole number";
                        return null;
                    }
                    ids.Add(id);
                }
                return verb == "move" ? new Move(peer, ids) : new Prepare(peer, ids);
            default:
                error = "unknown request; one of: key EPOCH HEX, accept ADDR:PORT, list, move PEER:PORT ID..., prepare PEER:PORT ID...";
                return null;
        }
    }

    private static bool Endpoint(string text, string verb, out IPEndPoint endpoint, out string error)
    {
        error = "";
        if (!IPEndPoint.TryParse(text, out endpoint!) || endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any))
        {
            error = $"{verb}: '{(text.Length > 64 ? text[..64] : text)}' is not ADDR:PORT of a node";
            return false;
        }
        if (endpoint.Port == 0)
        {
            endpoint = new IPEndPoint(endpoint.Address, DefaultChannelPort);
        }
        return true;
    }
}
