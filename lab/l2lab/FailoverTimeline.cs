using System.Globalization;
using L2Balance.Lab.Cluster;
using ScottPlot;

namespace L2Balance.Lab.Cli;

/// <summary>A moment marked on a failover timeline: the kill, the cover, the return.</summary>
/// <param name="Ms">Milliseconds since the traffic run started.</param>
/// <param name="Label">What happened then.</param>
internal sealed record TimelineMark(double Ms, string Label);

/// <summary>
/// The failover as a picture: successful CONNECTs per node per 100 ms, with the kill, the cover and
/// the return marked, written as a PNG next to the run's JSON.
/// </summary>
internal static class FailoverTimeline
{
    public const double BinMs = 100;

    /// <summary>Writes the plot to <paramref name="path"/> and returns the path.</summary>
    public static string Write(string path, string title, TrafficResults traffic, IReadOnlyList<TimelineMark> marks)
    {
        var plot = new Plot();
        foreach (var (node, counts) in traffic.OkPerNodePerBin(BinMs))
        {
            // Each count is drawn at its bin's middle, in seconds since the traffic started.
            var xs = counts.Select((_, i) => (i + 0.5) * BinMs / 1000).ToArray();
            var ys = counts.Select(c => (double)c).ToArray();
            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = string.Create(CultureInfo.InvariantCulture, $"node {node}");
            line.MarkerSize = 0;
            line.LineWidth = 2;
        }
        var shown = marks.Where(m => !double.IsNaN(m.Ms)).ToArray();
        for (var i = 0; i < shown.Length; i++)
        {
            var rule = plot.Add.VerticalLine(shown[i].Ms / 1000);
            rule.Text = shown[i].Label;
            // Alternate labels above and below: a cover follows its kill closely and the labels would overlap.
            rule.LabelOppositeAxis = i % 2 == 0;
            rule.LineWidth = 1;
            rule.LinePattern = LinePattern.Dashed;
        }
        plot.Title(title);
        plot.XLabel("seconds since the traffic started");
        plot.YLabel(string.Create(CultureInfo.InvariantCulture, $"successful CONNECTs per {BinMs:0} ms"));
        plot.ShowLegend(Alignment.UpperRight);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        plot.SavePng(path, 1200, 500);
        return path;
    }
}
