using System.Globalization;
using System.Text;
using L2Balance.Proxy.Migration;

namespace L2Balance.Proxy.Workers;

/// <summary>
/// Session ids of the supervisor's merged <c>list</c> (<c>--workers N</c>): worker W's session L is
/// <c>L × N + W</c>, unique across workers, and a <c>move</c> id names its worker by the remainder.
/// Pure: the forwarding (<see cref="WorkerMigrationForwarder"/>) does the talking.
/// </summary>
internal static class WorkerSessionIds
{
    /// <summary>The supervisor's id of worker <paramref name="worker"/>'s session <paramref name="local"/>; null when it does not fit a long.</summary>
    public static long? Global(long local, int worker, int workers)
    {
        if (local < 0 || local > (long.MaxValue - worker) / workers)
        {
            return null;
        }
        return (local * workers) + worker;
    }

    /// <summary>The worker and its own id of a supervisor's id.</summary>
    public static (int Worker, long Local) Split(long global, int workers) => ((int)(global % workers), global / workers);

    /// <summary>A worker's <c>session ID ...</c> line with the supervisor's id; null for any other line.</summary>
    public static string? RewriteSessionLine(string line, int worker, int workers)
    {
        ArgumentNullException.ThrowIfNull(line);
        var words = line.Split(' ', 3);
        if (words.Length != 3 || words[0] != "session"
            || !long.TryParse(words[1], NumberStyles.None, CultureInfo.InvariantCulture, out var local)
            || Global(local, worker, workers) is not { } global)
        {
            return null;
        }
        return string.Create(CultureInfo.InvariantCulture, $"session {global} {words[2]}");
    }

    /// <summary>The distinct ids of a <c>move</c>, in request order, grouped by worker as that worker's own ids.</summary>
    public static List<long>[] SplitMove(IReadOnlyList<long> ids, int workers)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var perWorker = Enumerable.Range(0, workers).Select(_ => new List<long>()).ToArray();
        foreach (var id in ids.Distinct())
        {
            var (worker, local) = Split(id, workers);
            perWorker[worker].Add(local);
        }
        return perWorker;
    }

    /// <summary>
    /// The supervisor's answer to a <c>move</c> (or <c>prepare</c>): per distinct id in request order, its worker's
    /// <c>moved</c>/<c>stayed</c> (<c>prepared</c>) line with the supervisor's id, or <c>stayed ID workers</c> when that
    /// worker gave none (gone, no answer in time); <paramref name="unanswered"/> is called for those.
    /// </summary>
    public static string MergeMove(IReadOnlyList<long> ids, int workers, IReadOnlyList<string?> answers, Action<long> unanswered)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(answers);
        ArgumentNullException.ThrowIfNull(unanswered);
        var byWorker = answers.Select(ParseMoveAnswer).ToArray();
        var text = new StringBuilder();
        foreach (var id in ids.Distinct())
        {
            var (worker, local) = Split(id, workers);
            if (byWorker[worker].TryGetValue(local, out var rest))
            {
                text.Append(CultureInfo.InvariantCulture, $"{rest.Verb} {id}{rest.Tail}\n");
            }
            else
            {
                unanswered(id);
                text.Append(CultureInfo.InvariantCulture, $"stayed {id} {MigrationRefusal.Workers.Word()}\n");
            }
        }
        return text.Append("end\n").ToString();
    }

    /// <summary>A worker's <c>moved ID ...</c> and <c>stayed ID ...</c> lines by its id; nothing for an error or anything else.</summary>
    private static Dictionary<long, (string Verb, string Tail)> ParseMoveAnswer(string? answer)
    {
        var lines = new Dictionary<long, (string, string)>();
        foreach (var line in (answer ?? "").Split('\n'))
        {
            var words = line.Split(' ', 3);
            if (words.Length == 3 && words[0] is "moved" or "stayed"
                && long.TryParse(words[1], NumberStyles.None, CultureInfo.InvariantCulture, out var local))
            {
                lines.TryAdd(local, (words[0], " " + words[2]));
            }
            else if (words is ["prepared", var id] && long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var prepared))
            {
                lines.TryAdd(prepared, (words[0], ""));
            }
        }
        return lines;
    }
}
