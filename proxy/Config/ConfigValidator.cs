using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Config;

/// <summary>A validation error about one setting; <see cref="Setting"/> is the <see cref="ProxyOptions"/> property name,
/// so a front end can point at where that setting was given.</summary>
/// <param name="Setting">The <see cref="ProxyOptions"/> property concerned.</param>
/// <param name="Message">What is wrong, for people.</param>
/// <param name="Rule">The rule concerned, when the problem is about one rule.</param>
public readonly record struct ConfigProblem(string Setting, string Message, RuleSource? Rule = null);

/// <summary>What <see cref="ConfigValidator.Validate"/> found: errors make the options unusable, warnings do not.</summary>
public sealed record ConfigValidation(IReadOnlyList<ConfigProblem> Errors, IReadOnlyList<string> Warnings);

/// <summary>
/// Checks that hold across settings, shared by both front ends (docs/conventions.md §17, YARP ConfigValidator):
/// it runs once on the finished options and collects every problem.
/// </summary>
public static class ConfigValidator
{
    public static ConfigValidation Validate(ProxyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = new List<ConfigProblem>();
        var warnings = new List<string>();

        if (options.Internal.Count == 0)
        {
            errors.Add(new(nameof(ProxyOptions.Internal), "no internal address to listen on (internal: or --listen)"));
        }

        if (options.SocksMethods.Count == 0)
        {
            errors.Add(new(nameof(ProxyOptions.SocksMethods), "no socksmethod: at least one of none, username, gssapi"));
        }

        if (options.ClientMethods.Count == 0 || options.ClientMethods.Any(m => m != MethodKind.None))
        {
            errors.Add(new(nameof(ProxyOptions.ClientMethods), "clientmethod must be 'none'"));
        }

        // Rule methods must be a subset of the global list (checked below), so the global list decides.
        if (options.SocksMethods.Contains(MethodKind.Username) && options.UsersFile is null)
        {
            errors.Add(new(nameof(ProxyOptions.SocksMethods), "socksmethod username needs users.file or --users"));
        }

        foreach (var rule in options.SocksRules)
        {
            foreach (var method in rule.Methods ?? (IEnumerable<MethodKind>)[])
            {
                if (!options.SocksMethods.Contains(method))
                {
                    // Dante: a rule can only narrow the global list; a method not offered is never selected.
                    errors.Add(new(nameof(ProxyOptions.SocksRules),
                        $"socks rule #{rule.Source.Number}: socksmethod '{method.ToString().ToLowerInvariant()}' is not in the global socksmethod list",
                        rule.Source));
                }
            }
        }

        if (options.PortRange is { } range && (range.Low == 0 || range.Low > range.High))
        {
            errors.Add(new(nameof(ProxyOptions.PortRange), $"bad port range {range}: need 1 <= LO <= HI <= 65535"));
        }

        CheckTimeout(errors, nameof(ProxyOptions.NegotiateTimeout), "timeout.negotiate", options.NegotiateTimeout, zeroAllowed: false);
        CheckTimeout(errors, nameof(ProxyOptions.ConnectTimeout), "timeout.connect", options.ConnectTimeout, zeroAllowed: false);
        CheckTimeout(errors, nameof(ProxyOptions.IoTimeout), "timeout.io", options.IoTimeout, zeroAllowed: true);
        CheckTimeout(errors, nameof(ProxyOptions.ResolveTimeout), "resolve timeout", options.ResolveTimeout, zeroAllowed: false);

        if (options.Debug is < 0 or > 2)
        {
            errors.Add(new(nameof(ProxyOptions.Debug), $"debug level {options.Debug} is not 0, 1 or 2"));
        }

        if (options.MaxClients < 1)
        {
            errors.Add(new(nameof(ProxyOptions.MaxClients), "max clients must be at least 1"));
        }

        if (options.MaxClientsPerAddress < 1)
        {
            errors.Add(new(nameof(ProxyOptions.MaxClientsPerAddress), "max clients per address must be at least 1"));
        }

        if (options.MaxUdpAssociations < 0)
        {
            errors.Add(new(nameof(ProxyOptions.MaxUdpAssociations), "max UDP associations must not be negative"));
        }

        if (options.Workers is < 1 or > ProxyOptions.MaxWorkers)
        {
            errors.Add(new(nameof(ProxyOptions.Workers), $"workers must be between 1 and {ProxyOptions.MaxWorkers}"));
        }

        if (options.LogOutput.Count == 0)
        {
            errors.Add(new(nameof(ProxyOptions.LogOutput), "logoutput has no target"));
        }

        if (!options.ClientRules.Any(r => r.Action == RuleAction.Pass) || !options.SocksRules.Any(r => r.Action == RuleAction.Pass))
        {
            // Dante refuses everything that no rule passes; say so instead of starting a proxy nobody can use.
            warnings.Add("no client/socks pass rule: every client will be refused");
        }

        return new ConfigValidation(errors, warnings);
    }

    private static void CheckTimeout(List<ConfigProblem> errors, string setting, string name, TimeSpan value, bool zeroAllowed)
    {
        if (value < TimeSpan.Zero)
        {
            errors.Add(new(setting, $"{name} must not be negative"));
        }
        else if (value == TimeSpan.Zero && !zeroAllowed)
        {
            // Dante reads 0 as "forever"; a handshake or connect that never times out lets a client pin a session.
            errors.Add(new(setting, $"{name} must be at least 1 second"));
        }
        else if (value.TotalSeconds > AddressSyntax.MaxTimeoutSeconds)
        {
            errors.Add(new(setting, $"{name} is too long (at most {AddressSyntax.MaxTimeoutSeconds} s)"));
        }
    }
}
