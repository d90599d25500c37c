using System.Buffers;
using System.Net;
using FsCheck;
using FsCheck.Fluent;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Fuzz.Targets.Proxy;

/// <summary>FsCheck generators of valid SOCKS messages on the wire, for the proxy's fuzz targets.</summary>
public static class ProxyGen
{
    private static readonly Gen<byte> AnyByte = Gen.Choose(0, 255).Select(b => (byte)b);

    private static readonly Gen<ushort> Port = Gen.OneOf(Gen.Elements<ushort>(0, 1, 80, 443, 1080, 65535), Gen.Choose(0, 65535).Select(p => (ushort)p));

    /// <summary>Names of 1..255 printable ASCII bytes, often the longest, as the codecs accept.</summary>
    private static readonly Gen<string> Host =
        Gen.OneOf(Gen.Elements(1, 2, 63, 64, 253, 254, 255), Gen.Choose(1, 255))
            .SelectMany(n => Gen.Choose(0x21, 0x7e).Select(c => (char)c).ArrayOf(n))
            .Select(chars => new string(chars));

    /// <summary>Any address of the family, IPv4-mapped IPv6 included.</summary>
    private static Gen<IPAddress> Address(int bytes) => AnyByte.ArrayOf(bytes).Select(b => new IPAddress(b));

    private static readonly Gen<SocksEndpoint> Endpoint = Gen.OneOf(
        Gen.Zip(Address(4), Port).Select(t => SocksEndpoint.FromAddress(t.Item1, t.Item2)),
        Gen.Zip(Address(16), Port).Select(t => SocksEndpoint.FromAddress(t.Item1, t.Item2)),
        Gen.Zip(Host, Port).Select(t => SocksEndpoint.FromHost(t.Item1, t.Item2)));

    /// <summary>Text of 0..255 UTF-8 bytes with line breaks, controls and multi-byte characters.</summary>
    private static Gen<string> Text(int min) =>
        Gen.Elements("u", "ser", "\n", "\r\n", "\u001b", ":", "\u00fc", "\u20ac", "\U0001F600", "\0", " ").ArrayOf()
            .Select(pieces => Fit(string.Concat(pieces), min));

    public static Gen<byte[]> Socks4Requests { get; } =
        from command in Gen.Elements(SocksCommand.Connect, SocksCommand.Bind)
        from destination in Gen.OneOf(
            Gen.Zip(Address(4).Where(a => a.GetAddressBytes()[..3].Any(b => b != 0)), Port).Select(t => SocksEndpoint.FromAddress(t.Item1, t.Item2)),
            Gen.Zip(Host, Port).Select(t => SocksEndpoint.FromHost(t.Item1, t.Item2)))
        from user in Text(0).Select(u => u.Replace("\0", "", StringComparison.Ordinal))
        select Wire(w => Socks4Codec.WriteRequest(new Socks4Request(command, destination, user), w));

    public static Gen<byte[]> Socks5Greetings { get; } =
        Gen.Choose(1, 255).SelectMany(n => AnyByte.ArrayOf(n)).Select(methods => Wire(w => Socks5Codec.WriteGreeting(methods, w)));

    public static Gen<byte[]> Socks5Requests { get; } =
        from command in Gen.Elements(SocksCommand.Connect, SocksCommand.Bind, SocksCommand.UdpAssociate)
        from destination in Endpoint
        select Wire(w => Socks5Codec.WriteRequest(new Socks5Request(command, destination), w));

    public static Gen<byte[]> UserPassRequests { get; } =
        Gen.Zip(Text(1), Text(0)).Select(t => Wire(w => UserPassCodec.WriteRequest(new UserPassRequest(t.Item1, t.Item2), w)));

    /// <summary>RFC 1961 messages: each type with tokens of 0 to a few hundred bytes, and the abort.</summary>
    public static Gen<byte[]> GssapiMessages { get; } = Gen.OneOf(
        Gen.Constant(new byte[] { GssapiCodec.Version, (byte)GssapiMessageType.Abort }),
        from type in Gen.Elements(GssapiMessageType.Authentication, GssapiMessageType.ProtectionLevel, GssapiMessageType.Encapsulated)
        from token in AnyByte.ArrayOf()
        select Wire(w => GssapiCodec.WriteMessage(type, token, w)));

    public static Gen<byte[]> UdpDatagrams { get; } =
        from fragment in Gen.Elements<byte>(0, 0, 1, 127, 128, 255)
        from destination in Endpoint
        from payload in AnyByte.ArrayOf()
        select UdpWire(new UdpHeader(fragment, destination), payload);

    public static byte[] UdpWire(UdpHeader header, byte[] payload)
    {
        var datagram = new byte[UdpHeaderCodec.GetLength(header.Destination) + payload.Length];
        int length = UdpHeaderCodec.Write(header, datagram);
        payload.CopyTo(datagram, length);
        return datagram;
    }

    public static byte[] Wire(Action<IBufferWriter<byte>> write)
    {
        var writer = new ArrayBufferWriter<byte>();
        write(writer);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary><paramref name="text"/> cut to at most 255 UTF-8 bytes (whole characters), padded to <paramref name="min"/>.</summary>
    private static string Fit(string text, int min)
    {
        while (System.Text.Encoding.UTF8.GetByteCount(text) > 255)
        {
            text = text[..^(char.IsLowSurrogate(text[^1]) ? 2 : 1)];
        }

        return text.Length >= min ? text : text.PadRight(min, 'x');
    }
}
