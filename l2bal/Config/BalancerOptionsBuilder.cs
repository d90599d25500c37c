using System.Globalization;
using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Kernel;
using L2Balance.Common.CommandLine;
using static L2Balance.Balancer.Config.BalancerSettings;

namespace L2Balance.Balancer.Config;

/// <summary>
/// Turns the values of <c>l2bal run</c>'s settings, from flags and a configuration file alike, into
/// <see cref="BalancerOptions"/>. Every bad value is reported, naming the flag (or FILE:LINE:COLUMN
/// and the setting) and the value; a setting not given keeps the default of <see cref="BalancerOptions"/>.
/// </summary>
internal sealed class BalancerOptionsBuilder
{
    private readonly Dictionary<Setting, List<SettingValue>> _values;
    private readonly string? _configFile;
    private readonly List<SettingError> _errors = [];

    private BalancerOptionsBuilder(IEnumerable<SettingValue> values, string? configFile)
    {
        _values = values.GroupBy(v => v.Setting).ToDictionary(g => g.Key, g => g.ToList());
        _configFile = configFile;
    }

    /// <summary>
    /// Builds the options from <paramref name="values"/> (each single-valued setting at most once;
    /// <see cref="Merge"/> makes it so). Returns null and every error when one is wrong.
    /// </summary>
    public static BalancerOptions? Build(IEnumerable<SettingValue> values, string? configFile, out IReadOnlyList<SettingError> errors)
    {
        var builder = new BalancerOptionsBuilder(values, configFile);
        var options = builder.Build();
        errors = builder._errors;
        return builder._errors.Count == 0 ? options : null;
    }

    /// <summary>The values of a file, less the settings that flags give: flags win (a repeatable one replaces the file's list).</summary>
    public static IEnumerable<SettingValue> Merge(IReadOnlyList<SettingValue> fromFile, IReadOnlyList<SettingValue> fromFlags)
    {
        var flagged = fromFlags.Select(v => v.Setting).ToHashSet();
        return fromFile.Where(v => !flagged.Contains(v.Setting)).Concat(fromFlags);
    }

    private BalancerOptions? Build()
    {
        var iface = Required(Interface, "the segment interface, e.g. eth0");
        if (iface is not null && (iface.Text.Length > 15 || iface.Text.Contains('/', StringComparison.Ordinal) || iface.Text.Length == 0))
        {
            _errors.Add(iface.Problem("not an interface name"));
        }
        Required(Vip, "the shared IPv4 address, e.g. 198.18.0.10/24, or an IPv6 one, or both");
        var (vip, prefix, vip6, prefix6) = ReadVips();
        var nodeId = Whole(Required(NodeId), 1, MembershipView.MaxNodes, 0);
        var nodeCount = Whole(Required(NodeCount), 1, MembershipView.MaxNodes, 0);
        if (nodeId > 0 && nodeCount > 0 && nodeId > nodeCount)
        {
            _errors.Add(Single(NodeId)!.Relation("is larger than", Single(NodeCount)!));
        }
        var keyFile = Required(KeyFile, "the shared key; make one with 'l2bal genkey --output FILE'");
        var buckets = Whole(Single(Buckets), 1, MaxBuckets, BalancerOptions.DefaultBuckets);
        if (Single(Buckets) is { } bucketsValue && buckets > 0 && nodeCount > 0 && buckets < nodeCount)
        {
            _errors.Add(bucketsValue.Relation("is smaller than", Single(NodeCount)!));
        }
        var weight = Whole(Single(WeightSetting), Ownership.MinWeight, Ownership.MaxWeight, Ownership.DefaultWeight);
        var advertVersion = Whole(Single(AdvertVersion), 1, Protocol.AdvertCodec.HighestVersion, BalancerOptions.DefaultAdvertVersion);
        if (Single(WeightSetting) is { } weightValue && Single(AdvertVersion) is { } versionValue && advertVersion == 1)
        {
            // A version-1 advert has no room for the weight: peers would compute equal shares.
            _errors.Add(weightValue.Relation("needs advert version 2, not", versionValue));
        }
        var services = ReadServices();
        var options = new BalancerOptions
        {
            Interface = iface?.Text ?? "",
            Vip = vip,
            VipPrefix = prefix,
            Vip6 = vip6,
            Vip6Prefix = prefix6,
            NodeId = nodeId,
            NodeCount = nodeCount,
            KeyFile = keyFile?.Text ?? "",
            Buckets = buckets,
            Seed = UInt32(Single(Seed)),
            ClusterId = UInt32(Single(ClusterId)),
            AdvertInterval = Duration(Single(AdvertInterval), MinAdvertInterval, MaxAdvertInterval, BalancerOptions.DefaultAdvertInterval),
            DeadAfterMisses = Whole(Single(DeadAfter), 2, MaxDeadAfter, BalancerOptions.DefaultDeadAfterMisses),
            MacMode = ReadMacMode(Single(MacModeSetting)),
            Services = services,
            Affinity = ReadAffinity(services),
            Health = ReadHealthProbes(),
            HealthInterval = Duration(Single(HealthInterval), MinHealthInterval, MaxHealthInterval, BalancerOptions.DefaultHealthInterval),
            HealthFall = Whole(Single(HealthFall), 1, MaxHealthCount, BalancerOptions.DefaultHealthFall),
            HealthRise = Whole(Single(HealthRise), 1, MaxHealthCount, BalancerOptions.DefaultHealthRise),
            HealthTimeout = Duration(Single(HealthTimeout), MinHealthTimeout, MaxHealthTimeout, BalancerOptions.DefaultHealthTimeout),
            ControlPath = Single(BalancerSettings.Control)?.Text,
            ControlGroup = Single(ControlGroupSetting) is { } group ? ReadControlGroup(group) : null,
            Metrics = Single(Metrics) is { } metrics ? ReadMetrics(metrics) : null,
            Source = _configFile ?? "flags",
            PreviousKeyFile = Single(PreviousKeyFile)?.Text,
            AdvertVersion = advertVersion,
            Weight = weight,
            Migration = ReadMigration(vip, vip6, advertVersion),
        };
        return _errors.Count == 0 ? options : null;
    }

    private SettingValue? Single(Setting setting) => _values.TryGetValue(setting, out var list) ? list[^1] : null;

    private SettingValue? Required(Setting setting, string? what = null)
    {
        if (Single(setting) is { } value)
        {
            return value;
        }
        var why = what is null ? "" : $" ({what})";
        _errors.Add(new(null, _configFile is null
            ? $"{setting.Flag} is required{why}"
            : $"{_configFile}: {setting.Name} is required{why}: set it in the file or give {setting.Flag}"));
        return null;
    }

    private int Whole(SettingValue? value, int min, int max, int fallback)
    {
        if (value is null)
        {
            return fallback;
        }
        if (!WholeNumberSyntax.TryParse(value.Text, min, max, out var number, out var problem))
        {
            _errors.Add(value.Problem(problem));
        }
        return number;
    }

    private uint? UInt32(SettingValue? value)
    {
        if (value is null)
        {
            return null;
        }
        var text = value.Text;
        var ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? uint.TryParse(text[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var number)
            : uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out number);
        if (!ok)
        {
            _errors.Add(value.Problem("give a 32-bit unsigned number, decimal or 0x hex"));
            return null;
        }
        return number;
    }

    private TimeSpan Duration(SettingValue? value, TimeSpan min, TimeSpan max, TimeSpan fallback)
    {
        if (value is null)
        {
            return fallback;
        }
        if (!DurationSyntax.TryParse(value.Text, out var duration, out var problem))
        {
            _errors.Add(value.Problem(problem));
        }
        else if (duration < min || duration > max)
        {
            _errors.Add(value.Problem($"give a duration from {Range(min, max)}"));
        }
        return duration;
    }

    /// <summary>The <c>--vip</c> values: at most one IPv4 and one IPv6 address, each with its prefix.</summary>
    private (IPAddress? Vip, int Prefix, IPAddress? Vip6, int Prefix6) ReadVips()
    {
        IPAddress? vip = null, vip6 = null;
        int prefix = 32, prefix6 = 128;
        foreach (var value in _values.GetValueOrDefault(Vip) ?? [])
        {
            var text = value.Text;
            var slash = text.IndexOf('/', StringComparison.Ordinal);
            if (!IPAddress.TryParse(slash >= 0 ? text[..slash] : text, out var address)
                || address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            {
                _errors.Add(value.Problem("not an IPv4 or IPv6 address"));
                continue;
            }
            var v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
            if (v6 && (address.IsIPv4MappedToIPv6 || address.IsIPv6Multicast || address.IsIPv6LinkLocal
                || address.Equals(IPAddress.IPv6Any) || address.Equals(IPAddress.IPv6Loopback) || address.ScopeId != 0))
            {
                _errors.Add(value.Problem("not a unicast IPv6 address for a segment (global or ULA; link-local, multicast, loopback, mapped and scoped ones are refused)"));
                continue;
            }
            if (v6 ? vip6 is not null : vip is not null)
            {
                _errors.Add(value.Problem($"a second {(v6 ? "IPv6" : "IPv4")} VIP (give at most one address of each family)"));
                continue;
            }
            var max = v6 ? 128 : 32;
            var length = max;
            if (slash >= 0 && (!int.TryParse(text[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out length) || length < 1 || length > max))
            {
                _errors.Add(value.Problem($"the prefix must be 1 to {max}"));
                length = max;
            }
            if (v6)
            {
                (vip6, prefix6) = (address, length);
            }
            else
            {
                (vip, prefix) = (address, length);
            }
        }
        return (vip, prefix, vip6, prefix6);
    }

    private MacMode ReadMacMode(SettingValue? value)
    {
        if (value is null)
        {
            return BalancerOptions.DefaultMacMode;
        }
        foreach (var mode in new[] { MacMode.Multicast, MacMode.UnicastFlood })
        {
            if (value.Text == MacModeName(mode))
            {
                return mode;
            }
        }
        _errors.Add(value.Problem($"use {MacModeName(MacMode.Multicast)} or {MacModeName(MacMode.UnicastFlood)}"));
        return BalancerOptions.DefaultMacMode;
    }

    private List<ServiceSpec> ReadServices()
    {
        var services = new List<ServiceSpec>();
        foreach (var value in _values.GetValueOrDefault(Service) ?? [])
        {
            var parts = value.Text.Split('/');
            if (parts.Length != 2 || parts[0] is not ("tcp" or "udp")
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                _errors.Add(value.Problem("use tcp/PORT or udp/PORT"));
            }
            else if (port >= PortSlice.RangeLow && port <= PortSlice.RangeHigh)
            {
                _errors.Add(value.Problem(
                    $"port {port} lies inside the nodes' port slices ({PortSlice.RangeLow}-{PortSlice.RangeHigh}); choose a service port outside them"));
            }
            else
            {
                services.Add(new ServiceSpec(parts[0], port));
            }
        }
        return services;
    }

    private AffinityRule[] ReadAffinity(List<ServiceSpec> services)
    {
        var rules = new List<AffinityRule>();
        foreach (var value in _values.GetValueOrDefault(Affinity) ?? [])
        {
            var parts = value.Text.Split('=');
            var port = parts[0].Split('/');
            var mode = parts.Length == 2 ? AffinityRule.Modes.FirstOrDefault(m => m.Name == parts[1]) : default;
            if (parts.Length != 2 || port.Length != 2 || port[0] is not ("tcp" or "udp")
                || !int.TryParse(port[1], NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number is < 1 or > 65535 || mode.Name is null)
            {
                _errors.Add(value.Problem("use PROTO/PORT=MODE: tcp or udp, a port, and single, none or network (e.g. udp/53=none)"));
            }
            else if (!services.Contains(new ServiceSpec(port[0], number)))
            {
                _errors.Add(value.Problem($"{port[0]}/{number} is not a service of the VIP; declare it with --service {port[0]}/{number}"));
            }
            else if (rules.Any(r => r.Protocol == port[0] && r.Port == number))
            {
                _errors.Add(value.Problem($"{port[0]}/{number} has an affinity rule already; give one per port"));
            }
            else
            {
                rules.Add(new AffinityRule(port[0], number, mode.Mode));
            }
        }
        // Array.Empty when none, so options without rules compare equal (record equality).
        return rules.Count == 0 ? [] : [.. rules];
    }

    /// <summary>Every <c>--health</c> given; "none" only alone.</summary>
    private HealthProbeSpec[] ReadHealthProbes()
    {
        var values = _values.GetValueOrDefault(BalancerSettings.Health) ?? [];
        var probes = new List<HealthProbeSpec>();
        foreach (var value in values)
        {
            if (value.Text == HealthProbeSpec.None.ToString())
            {
                if (values.Count > 1)
                {
                    _errors.Add(value.Problem("'none' cannot be given with other probes"));
                }
            }
            else if (ReadHealth(value) is { } probe)
            {
                probes.Add(probe);
            }
        }
        // Array.Empty when none, so options without probes compare equal (record equality).
        return probes.Count == 0 ? [] : [.. probes];
    }

    private HealthProbeSpec? ReadHealth(SettingValue value)
    {
        var text = value.Text;
        if (text.StartsWith("exec:", StringComparison.Ordinal) && text.Length > 5)
        {
            return new HealthProbeSpec(HealthProbeKind.Exec, Command: text[5..]);
        }
        if (text.StartsWith("dns://", StringComparison.Ordinal))
        {
            return ReadDnsProbe(value, text["dns://".Length..]);
        }
        foreach (var (scheme, kind) in new[] { ("socks5://", HealthProbeKind.Socks5), ("tcp://", HealthProbeKind.Tcp) })
        {
            if (text.StartsWith(scheme, StringComparison.Ordinal))
            {
                if (IPEndPoint.TryParse(text[scheme.Length..], out var endPoint) && endPoint.Port != 0)
                {
                    return new HealthProbeSpec(kind, endPoint);
                }
                _errors.Add(value.Problem($"use {scheme}ADDR:PORT with a numeric address"));
                return null;
            }
        }
        _errors.Add(value.Problem("use socks5://ADDR:PORT, tcp://ADDR:PORT, dns://ADDR:PORT/NAME, exec:COMMAND or none"));
        return null;
    }

    private HealthProbeSpec? ReadDnsProbe(SettingValue value, string rest)
    {
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0 || !IPEndPoint.TryParse(rest[..slash], out var endPoint) || endPoint.Port == 0)
        {
            _errors.Add(value.Problem("use dns://ADDR:PORT/NAME with a numeric address and a port"));
            return null;
        }
        var name = rest[(slash + 1)..];
        if (Health.DnsProbeCodec.EncodeName(name, out var problem) is not { } wire)
        {
            _errors.Add(value.Problem($"not a DNS name: {problem}"));
            return null;
        }
        return new HealthProbeSpec(HealthProbeKind.Dns, endPoint, DnsName: name) { DnsWireName = wire };
    }

    private ControlGroup? ReadControlGroup(SettingValue value)
    {
        if (SystemAccounts.GroupId(value.Text) is { } gid)
        {
            return new ControlGroup(value.Text, gid);
        }
        _errors.Add(value.Problem("no such group on this system; create it (groupadd) or name an existing one"));
        return null;
    }

    /// <summary>--migrate ADDR[:PORT], at most one per family, one port, never a VIP; adverts of version 2 carry it.</summary>
    private Protocol.NodeAddresses? ReadMigration(IPAddress? vip, IPAddress? vip6, int advertVersion)
    {
        if (!_values.TryGetValue(Migrate, out var values))
        {
            return null;
        }
        IPAddress? ipv4 = null, ipv6 = null;
        int port = 0;
        foreach (var value in values)
        {
            if (!IPEndPoint.TryParse(value.Text, out var endpoint) || endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any))
            {
                _errors.Add(value.Problem("use this node's own address, ADDR or ADDR:PORT ([ADDR]:PORT for IPv6)"));
                continue;
            }
            var thisPort = endpoint.Port == 0 ? Protocol.NodeAddresses.DefaultPort : endpoint.Port;
            bool isV4 = endpoint.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork;
            if (endpoint.Address.Equals(vip) || endpoint.Address.Equals(vip6))
            {
                _errors.Add(value.Problem("is a VIP: sessions move between the nodes' own addresses"));
            }
            else if ((isV4 ? ipv4 : ipv6) is not null)
            {
                _errors.Add(value.Problem("gives a second address of one family"));
            }
            else if (port != 0 && thisPort != port)
            {
                _errors.Add(value.Problem($"has another port than {port}: the channel listens on one"));
            }
            else if (isV4)
            {
                ipv4 = endpoint.Address;
            }
            else
            {
                ipv6 = endpoint.Address;
            }
            port = thisPort;
        }
        if (advertVersion < Protocol.AdvertCodec.Version2)
        {
            _errors.Add(values[^1].Problem("needs advert version 2: a version-1 advert has no room for the node's address"));
        }
        return ipv4 is null && ipv6 is null ? null : new Protocol.NodeAddresses(ipv4, ipv6, port);
    }

    private IPEndPoint? ReadMetrics(SettingValue value)
    {
        if (!IPEndPoint.TryParse(value.Text, out var metrics) || metrics.Port == 0)
        {
            _errors.Add(value.Problem("use ADDR:PORT with a numeric address and a port"));
            return null;
        }
        return metrics;
    }
}
