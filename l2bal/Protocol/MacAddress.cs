using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace L2Balance.Balancer.Protocol;

/// <summary>A 48-bit IEEE 802 MAC address, stored in the low 48 bits of a <see cref="ulong"/>.</summary>
/// <remarks>A value type so that frame codecs can parse and compare addresses without allocating.</remarks>
internal readonly struct MacAddress : IEquatable<MacAddress>
{
    /// <summary>Length of a MAC address on the wire.</summary>
    public const int Length = 6;

    private const ulong Mask = 0xFFFF_FFFF_FFFFUL;

    private readonly ulong _value;

    /// <summary>Creates an address from its 48-bit value (first octet in bits 47..40).</summary>
    public MacAddress(ulong value)
    {
        if ((value & ~Mask) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(value), "A MAC address has 48 bits.");
        }

        _value = value;
    }

    /// <summary>ff:ff:ff:ff:ff:ff.</summary>
    public static MacAddress Broadcast => new(Mask);

    /// <summary>00:00:00:00:00:00 (also the "unknown" target hardware address of an ARP request).</summary>
    public static MacAddress Zero => default;

    /// <summary>The 48-bit value, first octet most significant.</summary>
    public ulong Value => _value;

    /// <summary>I/G bit (bit 0 of the first octet): group address; includes broadcast.</summary>
    public bool IsMulticast => ((_value >> 40) & 0x01) != 0;

    /// <summary>U/L bit (bit 1 of the first octet): locally administered, not from an OUI.</summary>
    public bool IsLocallyAdministered => ((_value >> 40) & 0x02) != 0;

    /// <summary>True for ff:ff:ff:ff:ff:ff.</summary>
    public bool IsBroadcast => _value == Mask;

    /// <summary>Reads 6 bytes in wire order.</summary>
    public static MacAddress Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Length)
        {
            throw new ArgumentException("A MAC address needs 6 bytes.", nameof(source));
        }

        return new MacAddress(((ulong)BinaryPrimitives.ReadUInt16BigEndian(source) << 32)
            | BinaryPrimitives.ReadUInt32BigEndian(source[2..]));
    }

    /// <summary>Writes 6 bytes in wire order.</summary>
    public void WriteTo(Span<byte> destination)
    {
        if (destination.Length < Length)
        {
            throw new ArgumentException("A MAC address needs 6 bytes.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)(_value >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(destination[2..], (uint)_value);
    }

    /// <summary>Parses "02:00:00:00:00:01" (colons or dashes, either case).</summary>
    public static MacAddress Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return TryParse(text, out var mac) ? mac : throw new FormatException($"Not a MAC address: '{text}'.");
    }

    /// <summary>Parses six two-digit hex octets separated by ':' or '-'.</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, out MacAddress mac)
    {
        mac = default;
        if (text is null || text.Length != 17)
        {
            return false;
        }

        char separator = text[2];
        if (separator is not (':' or '-'))
        {
            return false;
        }

        ulong value = 0;
        for (int i = 0; i < 6; i++)
        {
            if (i > 0 && text[(i * 3) - 1] != separator)
            {
                return false;
            }

            if (!byte.TryParse(text.AsSpan(i * 3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte octet))
            {
                return false;
            }

            value = (value << 8) | octet;
        }

        mac = new MacAddress(value);
        return true;
    }

    /// <summary>Lower-case, colon-separated, as iproute2 prints it.</summary>
    public override string ToString()
    {
        Span<byte> b = stackalloc byte[Length];
        WriteTo(b);
        return string.Create(CultureInfo.InvariantCulture, $"{b[0]:x2}:{b[1]:x2}:{b[2]:x2}:{b[3]:x2}:{b[4]:x2}:{b[5]:x2}");
    }

    public bool Equals(MacAddress other) => _value == other._value;

    public override bool Equals(object? obj) => obj is MacAddress other && Equals(other);

    public override int GetHashCode() => _value.GetHashCode();

    public static bool operator ==(MacAddress left, MacAddress right) => left.Equals(right);

    public static bool operator !=(MacAddress left, MacAddress right) => !left.Equals(right);
}
