namespace L2Balance.Balancer.Config;

/// <summary>
/// l2bal's configuration file: the settings of <c>l2bal run</c>, one per line as <c>NAME VALUE</c>
/// or <c>NAME: VALUE</c>, names as the flags without their dashes, <c>#</c> to the end of a line a
/// comment. A single-valued setting is given once; <c>service</c> and <c>affinity</c> may repeat. Every value keeps its
/// position, so that each error reads <c>FILE:LINE:COLUMN: message</c>.
/// </summary>
internal static class BalancerConfigFile
{
    /// <summary>Larger files are refused: a configuration is a few hundred bytes.</summary>
    public const long MaxFileBytes = 1 << 20;

    /// <summary>Reads <paramref name="path"/>; every problem is added to <paramref name="errors"/>; null when it cannot be read.</summary>
    public static IReadOnlyList<SettingValue>? Read(string path, List<SettingError> errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        string text;
        try
        {
            if (new FileInfo(path).Length > MaxFileBytes)
            {
                errors.Add(new(null, $"{path}: larger than {MaxFileBytes} bytes; is this the configuration file?"));
                return null;
            }
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            errors.Add(new(null, $"{path}: no such configuration file"));
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            errors.Add(new(null, $"{path}: cannot read the configuration file: {e.Message}"));
            return null;
        }
        return Parse(text, path, errors);
    }

    /// <summary>Reads configuration text; <paramref name="path"/> names it in positions.</summary>
    public static IReadOnlyList<SettingValue> Parse(string text, string path, List<SettingError> errors)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(errors);
        var values = new List<SettingValue>();
        var firstLine = new Dictionary<Setting, int>();
        var lines = text.Split('\n');
        for (var n = 0; n < lines.Length; n++)
        {
            var line = lines[n].TrimEnd('\r');
            var hash = line.IndexOf('#', StringComparison.Ordinal);
            if (hash >= 0)
            {
                line = line[..hash];
            }
            var nameAt = Skip(line, 0);
            if (nameAt == line.Length)
            {
                continue;
            }
            var nameEnd = nameAt;
            while (nameEnd < line.Length && !char.IsWhiteSpace(line[nameEnd]) && line[nameEnd] != ':')
            {
                nameEnd++;
            }
            var name = line[nameAt..nameEnd];
            var valueAt = Skip(line, nameEnd);
            if (valueAt < line.Length && line[valueAt] == ':')
            {
                valueAt = Skip(line, valueAt + 1);
            }
            var value = line[valueAt..].TrimEnd();
            var at = new ConfigPosition(path, n + 1, nameAt + 1);
            var setting = BalancerSettings.All.FirstOrDefault(s => s.Name == name);
            if (setting is null)
            {
                errors.Add(new(at, $"{at}: unknown setting '{name}' (the settings are the flags of 'l2bal run --help', without their dashes)"));
            }
            else if (value.Length == 0)
            {
                errors.Add(new(at, $"{at}: {name} needs a value"));
            }
            else if (!setting.Repeatable && firstLine.TryGetValue(setting, out var first))
            {
                errors.Add(new(at, $"{at}: {name} is set again (first on line {first}); give it once"));
            }
            else
            {
                firstLine.TryAdd(setting, n + 1);
                values.Add(new SettingValue(setting, value, at with { Column = valueAt + 1 }));
            }
        }
        return values;
    }

    private static int Skip(string line, int from)
    {
        while (from < line.Length && char.IsWhiteSpace(line[from]))
        {
            from++;
        }
        return from;
    }
}
