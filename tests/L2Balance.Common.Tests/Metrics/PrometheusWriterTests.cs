using System.Text;
using L2Balance.Common.Metrics;
using Xunit;

namespace L2Balance.Common.Tests.Metrics;

public sealed class PrometheusWriterTests
{
    private readonly StringBuilder _text = new();
    private readonly PrometheusWriter _writer;

    public PrometheusWriterTests() => _writer = new PrometheusWriter(_text);

    [Fact]
    public void Counter_Integer_IsHelpTypeAndSample()
    {
        _writer.Counter("x_adverts_sent_total", "Advertisements sent.", 42);

        Assert.Equal("# HELP x_adverts_sent_total Advertisements sent.\n# TYPE x_adverts_sent_total counter\nx_adverts_sent_total 42\n", _text.ToString());
    }

    [Fact]
    public void Counter_FractionalSeconds_StayFractional()
    {
        _writer.Counter("x_gc_pause_seconds_total", "GC pauses.", 0.0125);

        Assert.EndsWith("x_gc_pause_seconds_total 0.0125\n", _text.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(double.PositiveInfinity, "+Inf")]
    [InlineData(double.NegativeInfinity, "-Inf")]
    [InlineData(double.NaN, "NaN")]
    [InlineData(3.0, "3")]
    [InlineData(1e-7, "1E-07")]
    [InlineData(-2.5, "-2.5")]
    public void Gauge_Double_IsWrittenInTheFormatsSpelling(double value, string written)
    {
        _writer.Gauge("x_value", "A value.", value);

        Assert.EndsWith($"x_value {written}\n", _text.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Sample_Labels_AreEscapedAndKeepTheirOrder()
    {
        _writer.Family("x_requests_total", MetricType.Counter, "Requests.");
        _writer.Sample("path", "a\"b\\c\nd", 1);
        _writer.Sample([("code", "200"), ("method", "GET")], 2);

        Assert.EndsWith("x_requests_total{path=\"a\\\"b\\\\c\\nd\"} 1\nx_requests_total{code=\"200\",method=\"GET\"} 2\n", _text.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Family_Help_EscapesBackslashAndLineFeedButNotQuotes()
    {
        _writer.Gauge("x_value", "two\nlines \\ \"quoted\"", 1);

        Assert.StartsWith("# HELP x_value two\\nlines \\\\ \"quoted\"\n", _text.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Family_DeclaredTwice_IsRefused()
    {
        _writer.Gauge("x_value", "A value.", 1);

        Assert.Throws<InvalidOperationException>(() => _writer.Family("x_value", MetricType.Gauge, "Again."));
    }

    [Theory]
    [InlineData("")]
    [InlineData("9lives")]
    [InlineData("has-dash")]
    [InlineData("späce")]
    public void Family_InvalidName_IsRefused(string name)
    {
        Assert.Throws<ArgumentException>(() => _writer.Family(name, MetricType.Gauge, "A value."));
        Assert.Equal("", _text.ToString());
    }

    [Fact]
    public void Family_CounterWithoutTotalSuffix_IsRefused()
    {
        Assert.Throws<ArgumentException>(() => _writer.Family("x_sent", MetricType.Counter, "Sent."));
    }

    [Fact]
    public void Sample_InvalidLabelName_IsRefusedBeforeAnythingIsWritten()
    {
        _writer.Family("x_value", MetricType.Gauge, "A value.");
        var before = _text.ToString();

        Assert.Throws<ArgumentException>(() => _writer.Sample("a:b", "v", 1));
        Assert.Equal(before, _text.ToString());
    }

    [Fact]
    public void Sample_WithoutFamily_IsRefused()
    {
        Assert.Throws<InvalidOperationException>(() => _writer.Sample(1));
    }

    [Fact]
    public void Histogram_Buckets_AreCumulativeWithInfSumAndCount()
    {
        _writer.Histogram("x_seconds", "Latency.", [0.001, 0.01, 1], [2, 0, 3], count: 6, sum: 2.5);

        Assert.Equal(
            """
            # HELP x_seconds Latency.
            # TYPE x_seconds histogram
            x_seconds_bucket{le="0.001"} 2
            x_seconds_bucket{le="0.01"} 2
            x_seconds_bucket{le="1"} 5
            x_seconds_bucket{le="+Inf"} 6
            x_seconds_sum 2.5
            x_seconds_count 6

            """.ReplaceLineEndings("\n"),
            _text.ToString());
    }

    [Fact]
    public void Histogram_CountReadBeforeTheLastBucket_StaysMonotonic()
    {
        _writer.Histogram("x_seconds", "Latency.", [1], [5], count: 4, sum: 2);

        Assert.Contains("x_seconds_bucket{le=\"+Inf\"} 5\n", _text.ToString(), StringComparison.Ordinal);
        Assert.EndsWith("x_seconds_count 5\n", _text.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Histogram_BoundsNotIncreasing_AreRefused()
    {
        Assert.Throws<ArgumentException>(() => _writer.Histogram("x_seconds", "Latency.", [1, 1], [0, 0], 0, 0));
        Assert.Throws<ArgumentException>(() => _writer.Histogram("x_seconds", "Latency.", [1], [0, 0], 0, 0));
    }

    [Fact]
    public void Sample_OnAHistogramFamily_IsRefused()
    {
        _writer.Family("x_seconds", MetricType.Histogram, "Latency.");

        Assert.Throws<InvalidOperationException>(() => _writer.Sample(1));
    }
}
