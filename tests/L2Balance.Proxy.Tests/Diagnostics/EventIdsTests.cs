using System.Reflection;
using System.Text.RegularExpressions;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Proxy.Tests.Diagnostics;

public sealed partial class EventIdsTests
{
    private static readonly Dictionary<string, int> Declared = typeof(EventIds)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral)
        .ToDictionary(f => f.Name, f => (int)f.GetRawConstantValue()!);

    /// <summary>A row of the l2proxy table: | id | level | name | when | message names |.</summary>
    [GeneratedRegex(@"^\|\s*(?<id>\d+)\s*\|\s*(?<level>[a-z]+)\s*\|\s*`?(?<name>[A-Za-z]+)`?\s*\|(?<rest>.*)\|\s*$", RegexOptions.Multiline)]
    private static partial Regex Row();

    [Fact]
    public void EventIds_EachValue_IsUsedByOneEventOnly()
    {
        var reused = Declared.GroupBy(p => p.Value).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(p => p.Key))}");

        Assert.Empty(reused);
    }

    [Fact]
    public void EventIds_EachOne_HasALogMethodOfItsName()
    {
        var methods = typeof(ProxyLog).GetMethods(BindingFlags.Public | BindingFlags.Instance).Select(m => m.Name).ToHashSet();

        Assert.All(Declared.Keys, name => Assert.Contains(name, methods));
    }

    [Fact]
    public void EventsDoc_L2ProxySection_DocumentsEveryIdAndNoOther()
    {
        var documented = L2ProxySection().Select(m => (Name: m.Groups["name"].Value, Id: int.Parse(m.Groups["id"].Value, System.Globalization.CultureInfo.InvariantCulture))).ToList();

        Assert.Equal(Declared.OrderBy(p => p.Value).Select(p => (p.Key, p.Value)), documented.OrderBy(d => d.Id).Select(d => (d.Name, d.Id)));
    }

    [Fact]
    public void EventsDoc_EveryL2ProxyRow_NamesALevelAndSaysWhenAndWhat()
    {
        foreach (Match row in L2ProxySection())
        {
            Assert.Contains(row.Groups["level"].Value, new[] { "debug", "info", "warning", "error" });
            var cells = row.Groups["rest"].Value.Split('|');
            Assert.True(cells.Length == 2 && cells.All(c => c.Trim().Length > 0), $"row without 'when' and 'message names': {row.Value}");
        }
    }

    private static MatchCollection L2ProxySection()
    {
        var doc = File.ReadAllText(Path.Combine(Repository.Root, "docs", "events.md"));
        var start = doc.IndexOf("\n## l2proxy", StringComparison.Ordinal);
        Assert.True(start >= 0, "docs/events.md has no '## l2proxy' section");
        var end = doc.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        return Row().Matches(end < 0 ? doc[start..] : doc[start..end]);
    }
}
