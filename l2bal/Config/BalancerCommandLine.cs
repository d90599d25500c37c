using System.Globalization;
using System.Net;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Kernel;

namespace L2Balance.Balancer.Config;

/// <summary>What the command line asks for; a closed set of records.</summary>
internal abstract record BalancerCommand
{
    private BalancerCommand()
    {
    }

    /// <summary><c>l2bal run</c>.</summary>
    public sealed record Run(BalancerOptions Options) : BalancerCommand;

    /// <summary>A request to a running daemon over its control socket (status, owner, drain, undrain).</summary>
    public sealed record Control(string Request, string? ControlPath) : BalancerCommand;

    /// <summary><c>l2bal slice</c>: print a node's port slice.</summary>
    public sealed record Slice(int NodeId, int NodeCount) : BalancerCommand;

    /// <summary><c>l2bal genkey</c>: print a fresh random key.</summary>
    public sealed record GenKey : BalancerCommand;

    public sealed record Help(string Text) : BalancerCommand;

    public sealed record Invalid(IReadOnlyList<string> Messages) : BalancerCommand;
}

/// <summary>
/// Parses l2bal's command line, and <c>--config FILE</c> (the same settings, one
/// <c>name value</c> per line, names as the flags without dashes). Every bad value is refused
/// with a message naming the flag (or file:line) and the value; all errors are collected.
/// </summary>
internal static class BalancerCommandLine
{
    public const string HelpText = """
        l2bal: layer-2 shared-address load balancer

        usage:
          l2bal run --interface IF --vip ADDR/PREFIX --node-id K --node-count N --key-file FILE [options]
          l2bal run --config FILE
          l2bal status [--json] [--control PATH]   state of the daemon on this node
          l2bal owner ADDR [--control PATH]        bucket of a client address and its owner now
          l2bal drain | undrain [--control PATH]   stop / resume taking new flows, keep established ones
          l2bal slice --node-id K --node-count N   this node's port slice, LO-HI (for l2proxy --port-range)
          l2bal genkey                             print a random 32-byte key (hex) for --key-file

        run options:
          --buckets B               hash buckets (default 4096)
          --seed S                  jhash seed (default: the cluster id)
          --cluster-id ID           cluster id in adverts (default: the VIP as a number)
          --advert-interval T       e.g. 40ms (default 40ms; dead after 3 missed: 120ms)
          --dead-after K            missed adverts before a peer is dead (default 3)
          --mac-mode M              multicast (default) or unicast-flood
          --service P/PORT          a service on the VIP, e.g. tcp/1080 (repeatable; new flows to other ports are dropped)
          --health URL              socks5://HOST:PORT, tcp://HOST:PORT or exec:COMMAND
          --health-interval T       time between health checks (default 100ms)
          --health-fall N           failed probes before unhealthy (default 3; a refused connect: at once)
          --health-rise N           good probes before healthy again (default 5)
          --health-timeout T        a probe with no answer within T fails (default 500ms)
          --control PATH            control socket (default: abstract @l2bal, per network namespace)
          --metrics ADDR:PORT       Prometheus metrics endpoint
        """;

    private static readonly string[] RunKeys =
    [
        "interface", "vip", "node-id", "node-count", "key-file", "buckets", "seed", "cluster-id", "advert-interval",
        "dead-after", "mac-mode", "service", "health", "health-interval", "health-fall", "health-rise", "health-timeout", "control", "metrics",
    ];

    public static BalancerCommand Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Count == 0 || args[0] is "--help" or "-h" or "help")
        {
            return new BalancerCommand.Help(HelpText);
        }
        var rest = args.Skip(1).ToList();
        switch (args[0])
        {
            case "run":
                return ParseRun(rest);
            case "status":
            {
                var json = rest.Remove("--json");
                return ControlCommand(json ? "status --json" : "status", rest);
            }
            case "owner":
                if (rest.Count == 0 || rest[0].StartsWith('-'))
                {
                    return Invalid("owner: give a client address, e.g. 'l2bal owner 198.18.64.10'");
                }
                if (!IPAddress.TryParse(rest[0], out var address) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
                {
                    return Invalid($"owner: '{rest[0]}' is not an IPv4 address");
                }
                return ControlCommand($"owner {address}", rest.Skip(1).ToList());
            case "drain":
            case "undrain":
                return ControlCommand(args[0], rest);
            case "slice":
                return ParseSlice(rest);
            case "genkey":
                return rest.Count == 0 ? new BalancerCommand.GenKey() : Invalid($"genkey takes no arguments (got '{rest[0]}')");
            default:
                return Invalid($"unknown command '{args[0]}'");
        }
    }

    private static BalancerCommand ControlCommand(string request, List<string> rest)
    {
        string? path = null;
        for (var i = 0; i < rest.Count; i++)
        {
            if (rest[i] == "--control" && i + 1 < rest.Count)
            {
                path = rest[++i];
            }
            else
            {
                return Invalid($"{request.Split(' ')[0]}: unexpected argument '{rest[i]}'");
            }
        }
        return new BalancerCommand.Control(request, path);
    }

    private static BalancerCommand ParseSlice(List<string> rest)
    {
        var errors = new List<string>();
        var values = ReadFlags(rest, ["node-id", "node-count"], errors, "slice");
        var nodeId = Int(values, "node-id", 1, 64, errors, required: true);
        var nodeCount = Int(values, "node-count", 1, 64, errors, required: true);
        if (errors.Count == 0 && nodeId > nodeCount)
        {
            errors.Add($"--node-id {nodeId} is larger than --node-count {nodeCount}");
        }
        return errors.Count > 0 ? new BalancerCommand.Invalid(errors) : new BalancerCommand.Slice(nodeId, nodeCount);
    }

    private static BalancerCommand ParseRun(List<string> rest)
    {
        var errors = new List<string>();
        string source = "flags";
        Dictionary<string, List<string>> values;
        if (rest.Count >= 1 && rest[0] == "--config")
        {
            if (rest.Count != 2)
            {
                return Invalid("run --config FILE takes no other flags");
            }
            source = rest[1];
            values = ReadConfigFile(rest[1], errors);
        }
        else
        {
            values = ReadFlags(rest, RunKeys, errors, "run");
        }
        if (errors.Count > 0)
        {
            return new BalancerCommand.Invalid(errors);
        }
        var options = Build(values, source, errors);
        return errors.Count > 0 || options is null ? new BalancerCommand.Invalid(errors) : new BalancerCommand.Run(options);
    }

    /// <summary>Reads <c>--name value</c> and <c>--name=value</c> pairs; unknown names and missing values are errors.</summary>
    private static Dictionary<string, List<string>> ReadFlags(List<string> args, string[] known, List<string> errors, string command)
    {
        var values = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                errors.Add($"{command}: unexpected argument '{arg}'");
                continue;
            }
            var name = arg[2..];
            string? value = null;
            var eq = name.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            if (!known.Contains(name))
            {
                errors.Add($"{command}: unknown flag '--{name}'");
                continue;
            }
            if (value is null)
            {
                if (i + 1 >= args.Count)
                {
                    errors.Add($"--{name} needs a value");
                    continue;
                }
                value = args[++i];
            }
            if (!values.TryGetValue(name, out var list))
            {
                values[name] = list = [];
            }
            list.Add(value);
        }
        return values;
    }

    /// <summary>A config file: one <c>name value</c> (or <c>name: value</c>) per line, # comments.</summary>
    private static Dictionary<string, List<string>> ReadConfigFile(string path, List<string> errors)
    {
        var values = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            errors.Add($"{path}: cannot read: {e.Message}");
            return values;
        }
        for (var n = 0; n < lines.Length; n++)
        {
            var line = lines[n];
            var hash = line.IndexOf('#', StringComparison.Ordinal);
            if (hash >= 0)
            {
                line = line[..hash];
            }
            line = line.Trim();
            if (line.Length == 0)
            {
                continue;
            }
            var split = line.IndexOfAny([' ', '\t', ':']);
            if (split < 0)
            {
                errors.Add($"{path}:{n + 1}:1: '{line}' has no value");
                continue;
            }
            var name = line[..split];
            var value = line[(split + 1)..].Trim();
            if (!RunKeys.Contains(name))
            {
                errors.Add($"{path}:{n + 1}:1: unknown setting '{name}'");
                continue;
            }
            if (value.Length == 0)
            {
                errors.Add($"{path}:{n + 1}:{split + 2}: '{name}' needs a value");
                continue;
            }
            if (!values.TryGetValue(name, out var list))
            {
                values[name] = list = [];
            }
            list.Add(value);
        }
        return values;
    }

    private static BalancerOptions? Build(Dictionary<string, List<string>> values, string source, List<string> errors)
    {
        foreach (var (name, list) in values)
        {
            if (list.Count > 1 && name != "service")
            {
                errors.Add($"--{name} given {list.Count} times");
            }
        }
        var iface = Single(values, "interface");
        if (iface is null)
        {
            errors.Add("--interface is required (the segment interface, e.g. eth0)");
        }
        else if (iface.Length > 15 || iface.Contains('/', StringComparison.Ordinal))
        {
            errors.Add($"--interface '{iface}' is not an interface name");
        }
        IPAddress? vip = null;
        var prefix = 32;
        if (Single(values, "vip") is not { } vipText)
        {
            errors.Add("--vip is required (the shared IPv4 address, e.g. 198.18.0.10/24)");
        }
        else
        {
            var slash = vipText.IndexOf('/', StringComparison.Ordinal);
            var addressText = slash >= 0 ? vipText[..slash] : vipText;
            if (!IPAddress.TryParse(addressText, out vip) || vip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            {
                errors.Add($"--vip '{vipText}': not an IPv4 address (l2bal balances one IPv4 VIP)");
                vip = null;
            }
            else if (slash >= 0 && (!int.TryParse(vipText[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix is < 1 or > 32))
            {
                errors.Add($"--vip '{vipText}': prefix must be 1..32");
            }
        }
        var nodeCount = Int(values, "node-count", 1, MembershipView.MaxNodes, errors, required: true);
        var nodeId = Int(values, "node-id", 1, MembershipView.MaxNodes, errors, required: true);
        if (nodeId > 0 && nodeCount > 0 && nodeId > nodeCount)
        {
            errors.Add($"--node-id {nodeId} is larger than --node-count {nodeCount}");
        }
        var keyFile = Single(values, "key-file");
        if (keyFile is null)
        {
            errors.Add("--key-file is required (the shared key; make one with 'l2bal genkey > FILE')");
        }
        var buckets = values.ContainsKey("buckets") ? Int(values, "buckets", 1, 65536, errors) : 4096;
        if (buckets > 0 && nodeCount > 0 && buckets < nodeCount)
        {
            errors.Add($"--buckets {buckets} is smaller than --node-count {nodeCount}");
        }
        var seed = values.ContainsKey("seed") ? UInt(values, "seed", errors) : null;
        var clusterId = values.ContainsKey("cluster-id") ? UInt(values, "cluster-id", errors) : null;
        var interval = values.ContainsKey("advert-interval") ? Duration(values, "advert-interval", errors) : BalancerOptions.DefaultAdvertInterval;
        if (interval < TimeSpan.FromMilliseconds(5) || interval > TimeSpan.FromSeconds(10))
        {
            errors.Add($"--advert-interval {Single(values, "advert-interval")}: must be between 5ms and 10s");
        }
        var deadAfter = values.ContainsKey("dead-after") ? Int(values, "dead-after", 2, 100, errors) : 3;
        var macMode = MacMode.Multicast;
        if (Single(values, "mac-mode") is { } mode)
        {
            switch (mode)
            {
                case "multicast":
                    macMode = MacMode.Multicast;
                    break;
                case "unicast-flood":
                    macMode = MacMode.UnicastFlood;
                    break;
                default:
                    errors.Add($"--mac-mode '{mode}': use multicast or unicast-flood");
                    break;
            }
        }
        var services = new List<ServiceSpec>();
        foreach (var service in values.GetValueOrDefault("service") ?? [])
        {
            var parts = service.Split('/');
            if (parts.Length != 2 || parts[0] is not ("tcp" or "udp") || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                errors.Add($"--service '{service}': use tcp/PORT or udp/PORT");
            }
            else if (port >= PortSlice.RangeLow && port <= PortSlice.RangeHigh)
            {
                errors.Add($"--service '{service}': port {port} lies inside the nodes' port slices ({PortSlice.RangeLow}-{PortSlice.RangeHigh}); choose a service port outside them");
            }
            else
            {
                services.Add(new ServiceSpec(parts[0], port));
            }
        }
        var health = values.ContainsKey("health") ? Health(Single(values, "health")!, errors) : HealthProbeSpec.None;
        var healthInterval = values.ContainsKey("health-interval") ? Duration(values, "health-interval", errors) : BalancerOptions.DefaultHealthInterval;
        if (healthInterval < TimeSpan.FromMilliseconds(5) || healthInterval > TimeSpan.FromSeconds(60))
        {
            errors.Add($"--health-interval {Single(values, "health-interval")}: must be between 5ms and 60s");
        }
        var fall = values.ContainsKey("health-fall") ? Int(values, "health-fall", 1, 100, errors) : 3;
        var rise = values.ContainsKey("health-rise") ? Int(values, "health-rise", 1, 100, errors) : 5;
        var healthTimeout = values.ContainsKey("health-timeout") ? Duration(values, "health-timeout", errors) : TimeSpan.FromMilliseconds(500);
        if (healthTimeout < TimeSpan.FromMilliseconds(1) || healthTimeout > TimeSpan.FromSeconds(60))
        {
            errors.Add($"--health-timeout {Single(values, "health-timeout")}: must be between 1ms and 60s");
        }
        IPEndPoint? metrics = null;
        if (Single(values, "metrics") is { } metricsText && !IPEndPoint.TryParse(metricsText, out metrics))
        {
            errors.Add($"--metrics '{metricsText}': use ADDR:PORT");
        }
        if (metrics is { Port: 0 })
        {
            errors.Add($"--metrics '{metrics}': give a port");
        }
        if (errors.Count > 0)
        {
            return null;
        }
        return new BalancerOptions
        {
            Interface = iface!,
            Vip = vip!,
            VipPrefix = prefix,
            NodeId = nodeId,
            NodeCount = nodeCount,
            KeyFile = keyFile!,
            Buckets = buckets,
            Seed = seed,
            ClusterId = clusterId,
            AdvertInterval = interval,
            DeadAfterMisses = deadAfter,
            MacMode = macMode,
            Services = services,
            Health = health,
            HealthInterval = healthInterval,
            HealthFall = fall,
            HealthRise = rise,
            HealthTimeout = healthTimeout,
            ControlPath = Single(values, "control"),
            Metrics = metrics,
            Source = source,
        };
    }

    private static HealthProbeSpec Health(string text, List<string> errors)
    {
        if (text == "none")
        {
            return HealthProbeSpec.None;
        }
        if (text.StartsWith("exec:", StringComparison.Ordinal) && text.Length > 5)
        {
            return new HealthProbeSpec(HealthProbeKind.Exec, Command: text[5..]);
        }
        foreach (var (scheme, kind) in new[] { ("socks5://", HealthProbeKind.Socks5), ("tcp://", HealthProbeKind.Tcp) })
        {
            if (text.StartsWith(scheme, StringComparison.Ordinal))
            {
                if (IPEndPoint.TryParse(text[scheme.Length..], out var endPoint) && endPoint.Port != 0)
                {
                    return new HealthProbeSpec(kind, endPoint);
                }
                errors.Add($"--health '{text}': use {scheme}ADDR:PORT with a numeric address");
                return HealthProbeSpec.None;
            }
        }
        errors.Add($"--health '{text}': use socks5://ADDR:PORT, tcp://ADDR:PORT or exec:COMMAND");
        return HealthProbeSpec.None;
    }

    private static string? Single(Dictionary<string, List<string>> values, string name) =>
        values.TryGetValue(name, out var list) ? list[^1] : null;

    private static int Int(Dictionary<string, List<string>> values, string name, int min, int max, List<string> errors, bool required = false)
    {
        if (Single(values, name) is not { } text)
        {
            if (required)
            {
                errors.Add($"--{name} is required");
            }
            return 0;
        }
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            errors.Add($"--{name} '{text}': must be a whole number from {min} to {max}");
            return 0;
        }
        return value;
    }

    private static uint? UInt(Dictionary<string, List<string>> values, string name, List<string> errors)
    {
        var text = Single(values, name)!;
        var ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? uint.TryParse(text[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value)
            : uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
        if (!ok)
        {
            errors.Add($"--{name} '{text}': must be a 32-bit unsigned number (decimal or 0x hex)");
            return null;
        }
        return value;
    }

    /// <summary>Durations need a unit (<c>50ms</c>, <c>0.05s</c>): a bare number is ambiguous and refused.</summary>
    internal static TimeSpan Duration(Dictionary<string, List<string>> values, string name, List<string> errors)
    {
        var text = Single(values, name)!;
        if (TryParseDuration(text, out var value))
        {
            return value;
        }
        errors.Add($"--{name} '{text}': give a duration with a unit, e.g. 50ms or 0.05s");
        return TimeSpan.Zero;
    }

    internal static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        double scale;
        string number;
        if (text.EndsWith("ms", StringComparison.Ordinal))
        {
            (number, scale) = (text[..^2], 1);
        }
        else if (text.EndsWith('s'))
        {
            (number, scale) = (text[..^1], 1000);
        }
        else
        {
            return false;
        }
        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount) || amount <= 0)
        {
            return false;
        }
        value = TimeSpan.FromMilliseconds(amount * scale);
        return true;
    }

    private static BalancerCommand.Invalid Invalid(string message) => new([message]);
}
