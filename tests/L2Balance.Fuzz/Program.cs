using System.Globalization;
using L2Balance.Fuzz.Engine;

namespace L2Balance.Fuzz;

/// <summary>
/// The fuzz campaign outside the suite (run by <c>lab/fuzz</c>): <c>l2fuzz proxy|l2bal|all|TARGET
/// [--inputs N] [--seed S] [--minutes M] [--index I]</c>. Prints per target the inputs, crashes,
/// hangs, largest allocation and time, and each failure's replay line and hex; exits 1 on any failure.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        string? selector = null;
        long inputs = 1_000_000;
        ulong seed = (ulong)DateTime.UtcNow.Ticks;
        double minutes = 60;
        long? index = null;
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => ++i < args.Length ? args[i] : throw new ArgumentException($"{args[i - 1]} needs a value");
            switch (args[i])
            {
                case "--inputs": inputs = long.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--seed": seed = ParseSeed(Value()); break;
                case "--minutes": minutes = double.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--index": index = long.Parse(Value(), CultureInfo.InvariantCulture); break;
                case var name when selector is null && !name.StartsWith('-'): selector = name; break;
                default:
                    Console.Error.WriteLine($"l2fuzz: unknown argument '{args[i]}'\nusage: l2fuzz proxy|l2bal|all|TARGET [--inputs N] [--seed S] [--minutes M] [--index I]\ntargets: {string.Join(", ", FuzzTargets.Names)}");
                    return 2;
            }
        }

        IReadOnlyList<FuzzTarget> targets;
        try
        {
            targets = FuzzTargets.Select(selector ?? "all");
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"l2fuzz: {e.Message}");
            return 2;
        }

        var options = new FuzzOptions(inputs, seed, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(minutes), index);
        Console.WriteLine($"l2fuzz: {targets.Count} targets, {(index is null ? $"{inputs} inputs each" : $"input {index} only")}, seed 0x{seed:x16}, " +
            $"hang bound {options.HangBound.TotalSeconds} s, at most {minutes} min per target");
        long failures = 0;
        foreach (var target in targets)
        {
            Console.WriteLine($"{target.Name}: {target.EntryPoint}");
            var report = FuzzRunner.Run(target, options, r => Console.WriteLine($"  ... {r.Inputs} inputs, {r.FailureCount} failures, {r.Elapsed.TotalSeconds:0} s"));
            (target as IDisposable)?.Dispose();
            Console.WriteLine(report);
            foreach (var failure in report.Failures)
            {
                Console.WriteLine(failure);
            }

            failures += report.FailureCount;
        }

        Console.WriteLine(failures == 0 ? "l2fuzz: no failures" : $"l2fuzz: {failures} failures");
        return failures == 0 ? 0 : 1;
    }

    private static ulong ParseSeed(string text) => text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
        ? ulong.Parse(text[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture)
        : ulong.Parse(text, CultureInfo.InvariantCulture);
}
