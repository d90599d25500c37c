using System.Globalization;
using System.Text;

namespace L2Balance.Common.Metrics;

/// <summary>
/// Writes metrics in the Prometheus text exposition format 0.0.4: each family's <c># HELP</c> and
/// <c># TYPE</c> lines once, then its samples; label values and help text escaped as the format
/// requires; integers as integers and doubles as doubles (fractional seconds stay fractional).
/// </summary>
/// <remarks>
/// <para>
/// A family is declared with <see cref="Family"/> and its samples follow with <see cref="Sample(long)"/>
/// and its overloads; <see cref="Counter(string, string, long)"/>, <see cref="Gauge(string, string, long)"/>
/// and <see cref="Histogram"/> declare a family and write its samples in one call. Names are checked
/// (<c>[a-zA-Z_:][a-zA-Z0-9_:]*</c>; label names without the colon) and a family declared twice is
/// refused: these are programming errors, reported as exceptions rather than as output a scraper
/// would reject.
/// </para>
/// <para>Not thread-safe: one writer renders one scrape.</para>
/// <code>
/// var text = new StringBuilder();
/// var w = new PrometheusWriter(text);
/// w.Gauge("l2bal_buckets_held", "Buckets this node accepts new flows for.", held);
/// w.Counter("l2bal_gc_pause_seconds_total", "Time the runtime paused the daemon's threads.", GC.GetTotalPauseDuration().TotalSeconds);
/// w.Family("l2bal_adverts_rejected_total", MetricType.Counter, "Advertisements rejected, by reason.");
/// foreach (var reason in reasons)
/// {
///     w.Sample("reason", reason.ToString(), rejected(reason));
/// }
/// </code>
/// </remarks>
public sealed class PrometheusWriter
{
    /// <summary>The HTTP Content-Type of this format.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly StringBuilder _output;
    private readonly HashSet<string> _declared = new(StringComparer.Ordinal);
    private string? _family;
    private MetricType _type;

    /// <summary>Appends to <paramref name="output"/>.</summary>
    public PrometheusWriter(StringBuilder output)
    {
        ArgumentNullException.ThrowIfNull(output);
        _output = output;
    }

    /// <summary>
    /// Declares a metric family: writes its <c># HELP</c> and <c># TYPE</c> lines. The samples that
    /// follow belong to it, until the next family.
    /// </summary>
    /// <param name="name">The metric name, with its unit (<c>_seconds</c>, <c>_bytes</c>); a counter's ends in <c>_total</c>.</param>
    /// <param name="type">The family's type.</param>
    /// <param name="help">One line for humans; backslashes and line feeds are escaped.</param>
    /// <exception cref="ArgumentException">The name is not a metric name, or a counter's does not end in <c>_total</c>.</exception>
    /// <returns>This writer, for the family's first sample.</returns>
    /// <exception cref="InvalidOperationException">The family was already declared in this exposition.</exception>
    public PrometheusWriter Family(string name, MetricType type, string help)
    {
        ValidateName(name, allowColon: true, nameof(name));
        ArgumentNullException.ThrowIfNull(help);
        if (type == MetricType.Counter && !name.EndsWith("_total", StringComparison.Ordinal))
        {
            throw new ArgumentException($"counter '{name}' must end in _total", nameof(name));
        }

        if (!_declared.Add(name))
        {
            throw new InvalidOperationException($"metric family '{name}' is declared twice: HELP and TYPE come once per family");
        }

        _family = name;
        _type = type;
        _output.Append("# HELP ").Append(name).Append(' ');
        AppendEscaped(help, escapeQuote: false);
        _output.Append("\n# TYPE ").Append(name).Append(' ').Append(TypeName(type)).Append('\n');
        return this;
    }

    /// <summary>Writes the current family's sample without labels.</summary>
    /// <exception cref="InvalidOperationException">No family is declared, or it is a histogram (see <see cref="Histogram"/>).</exception>
    public void Sample(long value)
    {
        StartSample();
        AppendValue(value);
    }

    /// <inheritdoc cref="Sample(long)"/>
    public void Sample(double value)
    {
        StartSample();
        AppendValue(value);
    }

    /// <summary>Writes the current family's sample with one label, e.g. <c>{reason="BadHmac"}</c>.</summary>
    /// <exception cref="ArgumentException">The label name is not a label name.</exception>
    /// <exception cref="InvalidOperationException">No family is declared, or it is a histogram (see <see cref="Histogram"/>).</exception>
    public void Sample(string labelName, string labelValue, long value) => Sample([(labelName, labelValue)], value);

    /// <inheritdoc cref="Sample(string, string, long)"/>
    public void Sample(string labelName, string labelValue, double value) => Sample([(labelName, labelValue)], value);

    /// <summary>Writes the current family's sample with several labels, in the order given.</summary>
    /// <exception cref="ArgumentException">A label name is not a label name, or there is none.</exception>
    /// <exception cref="InvalidOperationException">No family is declared, or it is a histogram (see <see cref="Histogram"/>).</exception>
    public void Sample(ReadOnlySpan<(string Name, string Value)> labels, long value)
    {
        ValidateLabels(labels);
        StartSample();
        AppendLabels(labels);
        AppendValue(value);
    }

    /// <inheritdoc cref="Sample(ReadOnlySpan{ValueTuple{string, string}}, long)"/>
    public void Sample(ReadOnlySpan<(string Name, string Value)> labels, double value)
    {
        ValidateLabels(labels);
        StartSample();
        AppendLabels(labels);
        AppendValue(value);
    }

    /// <summary>Declares a counter family and writes its one sample.</summary>
    public void Counter(string name, string help, long value) => Family(name, MetricType.Counter, help).Sample(value);

    /// <summary>Declares a counter family and writes its one sample, e.g. seconds as fractional seconds.</summary>
    public void Counter(string name, string help, double value) => Family(name, MetricType.Counter, help).Sample(value);

    /// <summary>Declares a gauge family and writes its one sample.</summary>
    public void Gauge(string name, string help, long value) => Family(name, MetricType.Gauge, help).Sample(value);

    /// <summary>Declares a gauge family and writes its one sample.</summary>
    public void Gauge(string name, string help, double value) => Family(name, MetricType.Gauge, help).Sample(value);

    /// <summary>
    /// Declares a histogram family and writes it whole: one <c>_bucket</c> sample per upper bound
    /// (cumulative), the <c>+Inf</c> bucket, <c>_sum</c> and <c>_count</c>.
    /// </summary>
    /// <param name="name">The family name, e.g. <c>l2proxy_handshake_seconds</c>.</param>
    /// <param name="help">One line for humans.</param>
    /// <param name="upperBounds">The buckets' upper bounds (inclusive), strictly increasing and finite.</param>
    /// <param name="bucketCounts">
    /// Observations per bucket, not cumulative: <c>bucketCounts[i]</c> counts those above
    /// <c>upperBounds[i - 1]</c> and at most <c>upperBounds[i]</c>. The writer accumulates them.
    /// </param>
    /// <param name="count">All observations, those above the last bound included.</param>
    /// <param name="sum">The sum of all observations.</param>
    /// <remarks>
    /// Counters read one by one while observations are recorded can disagree by one; where
    /// <paramref name="count"/> is below the buckets' total, the total is written for both the
    /// <c>+Inf</c> bucket and <c>_count</c>, so the exposition stays a valid (monotonic) histogram.
    /// </remarks>
    /// <exception cref="ArgumentException">The bounds and counts differ in length, or the bounds are not strictly increasing and finite.</exception>
    public void Histogram(string name, string help, ReadOnlySpan<double> upperBounds, ReadOnlySpan<long> bucketCounts, long count, double sum)
    {
        if (upperBounds.Length != bucketCounts.Length)
        {
            throw new ArgumentException($"{upperBounds.Length} upper bounds but {bucketCounts.Length} bucket counts", nameof(bucketCounts));
        }

        for (var i = 0; i < upperBounds.Length; i++)
        {
            if (!double.IsFinite(upperBounds[i]) || (i > 0 && upperBounds[i] <= upperBounds[i - 1]))
            {
                throw new ArgumentException("upper bounds must be finite and strictly increasing", nameof(upperBounds));
            }
        }

        Family(name, MetricType.Histogram, help);
        long cumulative = 0;
        for (var i = 0; i < upperBounds.Length; i++)
        {
            cumulative += bucketCounts[i];
            Bucket(name, FormatDouble(upperBounds[i]), cumulative);
        }

        var total = Math.Max(count, cumulative);
        Bucket(name, "+Inf", total);
        _output.Append(name).Append("_sum");
        AppendValue(sum);
        _output.Append(name).Append("_count");
        AppendValue(total);
    }

    private void Bucket(string name, string upperBound, long cumulative)
    {
        _output.Append(name).Append("_bucket");
        AppendLabels([("le", upperBound)]);
        AppendValue(cumulative);
    }

    private void StartSample()
    {
        if (_family is null)
        {
            throw new InvalidOperationException("a sample needs its family declared first (Family)");
        }

        if (_type == MetricType.Histogram)
        {
            throw new InvalidOperationException($"'{_family}' is a histogram: write it with Histogram");
        }

        _output.Append(_family);
    }

    private static void ValidateLabels(ReadOnlySpan<(string Name, string Value)> labels)
    {
        if (labels.IsEmpty)
        {
            throw new ArgumentException("a labelled sample needs at least one label", nameof(labels));
        }

        foreach (var (labelName, labelValue) in labels)
        {
            ValidateName(labelName, allowColon: false, nameof(labels));
            ArgumentNullException.ThrowIfNull(labelValue, nameof(labels));
        }
    }

    private void AppendLabels(ReadOnlySpan<(string Name, string Value)> labels)
    {
        _output.Append('{');
        for (var i = 0; i < labels.Length; i++)
        {
            var (labelName, labelValue) = labels[i];
            _output.Append(i == 0 ? "" : ",").Append(labelName).Append("=\"");
            AppendEscaped(labelValue, escapeQuote: true);
            _output.Append('"');
        }

        _output.Append('}');
    }

    private void AppendValue(long value) => _output.Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');

    private void AppendValue(double value) => _output.Append(' ').Append(FormatDouble(value)).Append('\n');

    /// <summary>Shortest round-trip form; the format's spelling of the non-finite values.</summary>
    internal static string FormatDouble(double value) => value switch
    {
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        _ when double.IsNaN(value) => "NaN",
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };

    private void AppendEscaped(string text, bool escapeQuote)
    {
        foreach (var c in text)
        {
            _ = c switch
            {
                '\\' => _output.Append(@"\\"),
                '\n' => _output.Append(@"\n"),
                '"' when escapeQuote => _output.Append("\\\""),
                _ => _output.Append(c),
            };
        }
    }

    private static void ValidateName(string name, bool allowColon, string parameter)
    {
        ArgumentException.ThrowIfNullOrEmpty(name, parameter);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            var valid = char.IsAsciiLetter(c) || c == '_' || (c == ':' && allowColon) || (i > 0 && char.IsAsciiDigit(c));
            if (!valid)
            {
                throw new ArgumentException($"'{name}' is not a valid {(allowColon ? "metric" : "label")} name", parameter);
            }
        }
    }

    private static string TypeName(MetricType type) => type switch
    {
        MetricType.Counter => "counter",
        MetricType.Gauge => "gauge",
        MetricType.Histogram => "histogram",
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };
}
