using System.Globalization;
using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Config;

/// <summary>
/// Value syntax shared by the sockd.conf parser and the command line: networks, rule addresses,
/// interface names, port numbers and ranges, durations and log targets. Each method returns
/// null on success or an error message naming the offending text.
/// </summary>
internal static class AddressSyntax
{
    /// <summary>Linux IFNAMSIZ is 16 including the terminating NUL.</summary>
    public const int MaxInterfaceNameLength = 15;

    /// <summary>
    /// Parses <c>ADDR</c>, <c>ADDR/PREFIX</c>, <c>ADDR/DOTTED-MASK</c> (IPv4) or Dante's <c>0/0</c>.
    /// A bare address is a host (/32 or /128). Host bits below the prefix are cleared and
    /// reported through <paramref name="hostBitsSet"/> so the caller can warn.
    /// </summary>
    public static string? ParseNetwork(string text, out IPAddress network, out int prefix, out bool hostBitsSet)
    {
        network = IPAddress.Any;
        prefix = 0;
        hostBitsSet = false;
        if (text == "0/0")
        {
            return null;
        }

        int slash = text.IndexOf('/', StringComparison.Ordinal);
        string addressText = slash < 0 ? text : text[..slash];
        if (!TryParseIP(addressText, out var address))
        {
            return $"'{text}' is not an address or network";
        }

        int maxPrefix = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (slash < 0)
        {
            prefix = maxPrefix;
        }
        else
        {
            string prefixText = text[(slash + 1)..];
            if (IsDigits(prefixText) && prefixText.Length <= 3
                && int.TryParse(prefixText, NumberStyles.None, CultureInfo.InvariantCulture, out int bits) && bits <= maxPrefix)
            {
                prefix = bits;
            }
            else if (maxPrefix == 32 && TryParseIP(prefixText, out var mask) && mask.AddressFamily == AddressFamily.InterNetwork
                     && TryMaskToPrefix(mask, out int maskBits))
            {
                prefix = maskBits;
            }
            else
            {
                return $"bad prefix length or netmask '{prefixText}' in '{text}' (0..{maxPrefix})";
            }
        }

        network = Mask(address, prefix);
        hostBitsSet = !network.Equals(address);
        return null;
    }

    /// <summary>Parses a rule address without its port: a network, <c>.domain</c> or <c>host.name</c>.</summary>
    public static string? ParseRuleAddress(string text, out AddressMatcher matcher, out bool hostBitsSet)
    {
        matcher = AddressMatcher.Any;
        hostBitsSet = false;
        if (text.Length > 0 && (char.IsAsciiDigit(text[0]) || text.Contains(':', StringComparison.Ordinal)))
        {
            string? error = ParseNetwork(text, out var network, out int prefix, out hostBitsSet);
            if (error is not null)
            {
                return error;
            }

            matcher = new AddressMatcher(network, prefix, null, null);
            return null;
        }

        if (!IsDomainName(text))
        {
            return $"'{text}' is not an address, network or domain name";
        }

        matcher = new AddressMatcher(null, 0, text.ToLowerInvariant(), null);
        return null;
    }

    /// <summary>An address with a scope-less IPv4 or IPv6 literal; IPv4-mapped IPv6 becomes IPv4.</summary>
    public static bool TryParseIP(string text, out IPAddress address)
    {
        address = IPAddress.None;
        // IPAddress.TryParse accepts "1" or "1.2" as IPv4 (inet_aton style) and scope ids; Dante does not.
        bool v6 = text.Contains(':', StringComparison.Ordinal);
        if (text.Length == 0 || text.Contains('%', StringComparison.Ordinal)
            || (!v6 && text.Count(c => c == '.') != 3)
            || !IPAddress.TryParse(text, out var parsed))
        {
            return false;
        }

        address = parsed.IsIPv4MappedToIPv6 ? parsed.MapToIPv4() : parsed;
        return true;
    }

    /// <summary>A Linux interface name as Dante's <c>internal: eth0</c>: an identifier that is not an address.</summary>
    public static bool IsInterfaceName(string text) =>
        text.Length <= MaxInterfaceNameLength && SockdConfLexer.IsIdentifier(text) && !TryParseIP(text, out _);

    /// <summary><c>example.com</c> or <c>.example.com</c>: labels of letters, digits, '-' and '_'.</summary>
    public static bool IsDomainName(string text)
    {
        string name = text.StartsWith('.') ? text[1..] : text;
        if (name.Length is 0 or > 253)
        {
            return false;
        }

        foreach (string label in name.Split('.'))
        {
            if (label.Length is 0 or > 63 || !label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                return false;
            }
        }

        return true;
    }

    public static IPAddress Mask(IPAddress address, int prefix)
    {
        byte[] bytes = address.GetAddressBytes();
        for (int i = 0; i < bytes.Length; i++)
        {
            int keep = Math.Clamp(prefix - (i * 8), 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - keep));
        }

        return new IPAddress(bytes);
    }

    private static bool TryMaskToPrefix(IPAddress mask, out int prefix)
    {
        uint bits = (uint)IPAddress.NetworkToHostOrder(BitConverter.ToInt32(mask.GetAddressBytes()));
        prefix = System.Numerics.BitOperations.PopCount(bits);
        // Contiguous: the inverted mask plus one is a power of two (or zero for /0).
        uint inverted = ~bits;
        return (inverted & (inverted + 1)) == 0;
    }

    public static bool IsDigits(string text) => text.Length > 0 && text.All(char.IsAsciiDigit);

    /// <summary>A port number 0..65535 (<paramref name="allowZero"/>) or 1..65535.</summary>
    public static string? ParsePort(string text, bool allowZero, out ushort port)
    {
        port = 0;
        if (!IsDigits(text) || text.Length > 5
            || !int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) || value > 65535)
        {
            return $"bad port '{text}' (0..65535)";
        }

        if (value == 0 && !allowZero)
        {
            return "port 0 is not allowed here (1..65535)";
        }

        port = (ushort)value;
        return null;
    }

    /// <summary><c>LO-HI</c> with 1 &lt;= LO &lt;= HI &lt;= 65535.</summary>
    public static string? ParsePortRange(string text, out PortRange range)
    {
        range = default;
        int dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0 || dash == text.Length - 1)
        {
            return $"bad port range '{text}': expected LO-HI";
        }

        string? lowError = ParsePort(text[..dash], allowZero: false, out ushort low);
        string? highError = ParsePort(text[(dash + 1)..], allowZero: false, out ushort high);
        if ((lowError ?? highError) is { } error)
        {
            return $"bad port range '{text}': {error}";
        }

        if (low > high)
        {
            return $"bad port range '{text}': {low} is above {high}";
        }

        range = new PortRange(low, high);
        return null;
    }

    /// <summary>
    /// Whole seconds, 0 .. <see cref="MaxTimeoutSeconds"/>. The bound is what a CancellationToken
    /// timer accepts (int milliseconds, about 24.8 days).
    /// </summary>
    public static string? ParseSeconds(string text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (text.StartsWith('-'))
        {
            return $"negative duration '{text}'";
        }

        if (!IsDigits(text) || !long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long seconds))
        {
            return $"bad duration '{text}': expected whole seconds";
        }

        if (seconds > MaxTimeoutSeconds)
        {
            return $"duration {text} s is too long (at most {MaxTimeoutSeconds} s)";
        }

        duration = TimeSpan.FromSeconds(seconds);
        return null;
    }

    /// <summary>int.MaxValue milliseconds, rounded down to seconds.</summary>
    public const long MaxTimeoutSeconds = int.MaxValue / 1000;

    /// <summary><c>stderr</c>, <c>stdout</c>, <c>syslog</c>, <c>syslog/FACILITY</c> or an absolute file path.</summary>
    public static string? ParseLogTarget(string text, out LogTarget target)
    {
        target = LogTarget.Stderr;
        switch (text)
        {
            case "stderr":
                return null;
            case "stdout":
                target = new LogTarget(LogTargetKind.Stdout);
                return null;
            case "syslog":
                target = new LogTarget(LogTargetKind.Syslog);
                return null;
        }

        if (text.StartsWith("syslog/", StringComparison.Ordinal))
        {
            string facility = text["syslog/".Length..];
            if (!SyslogFacilities.Contains(facility))
            {
                return $"unknown syslog facility '{facility}'";
            }

            target = new LogTarget(LogTargetKind.Syslog, Facility: facility);
            return null;
        }

        if (text.StartsWith('/'))
        {
            target = new LogTarget(LogTargetKind.File, Path: text);
            return null;
        }

        return $"bad log target '{text}': expected stderr, stdout, syslog, syslog/FACILITY or an absolute path";
    }

    /// <summary>The facilities of syslog(3) that Dante accepts after <c>syslog/</c>.</summary>
    public static readonly IReadOnlySet<string> SyslogFacilities = new HashSet<string>(StringComparer.Ordinal)
    {
        "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog", "user", "uucp",
        "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    };
}
