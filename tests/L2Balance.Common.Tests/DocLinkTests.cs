using System.Text.RegularExpressions;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Common.Tests;

/// <summary>
/// Every place that cites a section of the repository's documents (<c>docs/design.md#&lt;anchor&gt;</c> in code,
/// <c>(benchmarks.md#&lt;anchor&gt;)</c> and <c>(#&lt;anchor&gt;)</c> links in docs/) names a heading that exists, by
/// GitHub's rule for heading anchors: lower case, characters other than letters, digits, spaces, hyphens
/// and underscores dropped, spaces made hyphens.
/// </summary>
public sealed partial class DocLinkTests
{
    private static readonly string[] Folders = ["l2bal", "proxy", "common", "native", "lab", "tests", "docs", "packaging"];

    [Fact]
    public void DocLinks_OfEverySourceAndDocument_NameAHeadingOfTheirDocument()
    {
        var root = Repository.Root;
        var docs = Directory.EnumerateFiles(Path.Combine(root, "docs"), "*.md")
            .ToDictionary(path => "docs/" + Path.GetFileName(path), path => Anchors(File.ReadAllLines(path)), StringComparer.Ordinal);
        var files = Folders.Where(folder => Directory.Exists(Path.Combine(root, folder)))
            .SelectMany(folder => Directory.EnumerateFiles(Path.Combine(root, folder), "*", SearchOption.AllDirectories))
            .Append(Path.Combine(root, "README.md"))
            .Select(path => Path.GetRelativePath(root, path).Replace('\\', '/'))
            .Where(file => !file.Split('/').Any(part => part is "bin" or "obj") && Path.GetExtension(file) is ".cs" or ".md" or "" or ".sh" or ".py" or ".conf")
            .OrderBy(file => file, StringComparer.Ordinal)
            .ToList();

        var checkedLinks = 0;
        var broken = new List<string>();
        foreach (var file in files)
        {
            var text = File.ReadAllText(Path.Combine(root, file));
            var inDocs = file.StartsWith("docs/", StringComparison.Ordinal) && file.EndsWith(".md", StringComparison.Ordinal);
            var links = Cited().Matches(text).Select(m => (Document: m.Groups["doc"].Value, Anchor: m.Groups["anchor"].Value, m.Index));
            if (inDocs)
            {
                links = links.Concat(Relative().Matches(text).Select(m => (Document: "docs/" + m.Groups["doc"].Value, Anchor: m.Groups["anchor"].Value, m.Index)))
                    .Concat(Local().Matches(text).Select(m => (Document: file, Anchor: m.Groups["anchor"].Value, m.Index)));
            }
            foreach (var (document, anchor, index) in links)
            {
                checkedLinks++;
                if (!docs.TryGetValue(document, out var anchors) || !anchors.Contains(anchor))
                {
                    broken.Add($"{file}:{text[..index].Count(c => c == '\n') + 1}: {document}#{anchor}");
                }
            }
        }

        // The scan must see what it checks: the design's many links.
        Assert.True(checkedLinks > 300, $"only {checkedLinks} links found");
        Assert.True(broken.Count == 0, $"{broken.Count} links name no heading of their document:\n{string.Join('\n', broken)}");
    }

    /// <summary>The anchors of a Markdown document's headings (outside fenced code).</summary>
    private static HashSet<string> Anchors(IEnumerable<string> lines)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        var fenced = false;
        foreach (var line in lines)
        {
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                fenced = !fenced;
            }
            else if (!fenced && Heading().Match(line) is { Success: true } heading)
            {
                anchors.Add(Slug(heading.Groups["text"].Value));
            }
        }
        return anchors;
    }

    private static string Slug(string heading) =>
        new string([.. heading.Trim().ToLowerInvariant().Where(c => char.IsLetterOrDigit(c) || c is ' ' or '-' or '_')]).Replace(' ', '-');

    [GeneratedRegex(@"^#{1,6}\s+(?<text>.+?)\s*#*$")]
    private static partial Regex Heading();

    /// <summary>A citation by repository path: docs/NAME.md#&lt;anchor&gt;.</summary>
    [GeneratedRegex(@"(?<![\w/])(?<doc>docs/[\w\-]+\.md)#(?<anchor>[\w\-]+)")]
    private static partial Regex Cited();

    /// <summary>A link from one document of docs/ to another: (NAME.md#&lt;anchor&gt;).</summary>
    [GeneratedRegex(@"\((?<doc>[\w\-]+\.md)#(?<anchor>[\w\-]+)\)")]
    private static partial Regex Relative();

    /// <summary>A link within the document: (#&lt;anchor&gt;).</summary>
    [GeneratedRegex(@"\]\(#(?<anchor>[\w\-]+)\)")]
    private static partial Regex Local();
}
