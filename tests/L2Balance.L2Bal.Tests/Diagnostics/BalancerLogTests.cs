using System.Reflection;
using System.Text.RegularExpressions;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Protocol;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.L2Bal.Tests.Diagnostics;

/// <summary>One method and one stable id per event, every id documented (docs/events.md).</summary>
public partial class BalancerLogTests
{
    private static IReadOnlyList<int> Ids() =>
        [.. typeof(EventIds).GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (int)f.GetRawConstantValue()!)];

    private static int LoggedId(string line) => int.Parse(LineId().Match(line).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void EventIds_EachValue_IsUsedByOneEventOnly()
    {
        var ids = Ids();
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    [Fact]
    public void Event_EveryKind_IsLoggedOnceWithAnIdOfItsOwn()
    {
        var output = new StringWriter();
        var log = new BalancerLog(output);
        foreach (var e in StatusDocumentTests.OneOfEach())
        {
            log.Event(e, self: 2);
        }
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(EventKind.All.Count, lines.Length);
        Assert.Equal(lines.Length, lines.Select(LoggedId).Distinct().Count());
        Assert.All(lines.Select(LoggedId), id => Assert.Contains(id, Ids()));
        Assert.All(lines, l => Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z l2bal\[\d+\]: (info|warning)\[\d+\]: ", l));
    }

    [Fact]
    public void AdvertRejected_RepeatedReason_IsLoggedOncePerTenSeconds()
    {
        var output = new StringWriter();
        var log = new BalancerLog(output);
        for (var i = 1; i <= 100; i++)
        {
            log.AdvertRejected(AdvertRejection.BadHmac, MacAddress.Parse("02:00:00:00:00:09"), i);
        }
        log.AdvertRejected(AdvertRejection.ConfigMismatch, MacAddress.Parse("02:00:00:00:00:09"), 1);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal([EventIds.AdvertRejected, EventIds.ConfigMismatch], lines.Select(LoggedId));
    }

    [Fact]
    public void ControlRefused_Repeated_IsLoggedOncePerTenSecondsApartFromAcceptFailures()
    {
        var output = new StringWriter();
        var log = new BalancerLog(output);
        for (var i = 1; i <= 50; i++)
        {
            log.ControlRefused("drain", "uid 65534 (pid 7)", i);
            log.ControlAcceptFailed("Too many open files", TimeSpan.FromMilliseconds(50), i);
        }
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal([EventIds.ControlRefused, EventIds.ControlAcceptFailed], lines.Select(LoggedId));
    }

    [Fact]
    public void EventsDocument_L2BalSection_ListsEveryId()
    {
        var doc = File.ReadAllText(Path.Combine(Repository.Root, "docs", "events.md"));
        var section = doc[doc.IndexOf("## l2bal", StringComparison.Ordinal)..doc.IndexOf("## l2proxy", StringComparison.Ordinal)];
        var documented = DocumentedId().Matches(section).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
        Assert.All(Ids(), id => Assert.Contains(id, documented));
    }

    [GeneratedRegex(@"\]: \w+\[(\d+)\]: ")]
    private static partial Regex LineId();

    [GeneratedRegex(@"^\| (\d+) \|", RegexOptions.Multiline)]
    private static partial Regex DocumentedId();
}
