using System.Buffers;
using System.Net;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Tests.Protocol;

/// <summary>A message on the wire and the exact rejection its one defect must get.</summary>
public readonly record struct MalformedWire(byte[] Wire, SocksRejection Reason)
{
    public override string ToString() => $"{Convert.ToHexString(Wire)} (want {Reason})";
}

/// <summary>
/// FsCheck generators of SOCKS4/4a/5 requests and RFC 1929 username/password requests, valid and
/// malformed. A malformed message carries exactly one defect in an otherwise valid message, so
/// its rejection reason is known whatever order the parser checks fields in.
/// </summary>
public static class SocksGen
{
    /// <summary>Pieces of user names, passwords and USERIDs: ASCII, control characters and newlines
    /// (which the RFCs allow and a log must not take raw), and 2-, 3- and 4-byte UTF-8.</summary>
    private static readonly string[] CredentialPieces =
    [
        "a", "Z", "7", " ", "-", ":", "@", "\\", "\"", "%n", "{0}",
        "\n", "\r", "\r\n", "\t", "\u001b[31m", "\u0007", "\u007f", "\u0085", "\u2028",
        "é", "ß", "€", "日本", "😀",
    ];

    public static Gen<ushort> Port { get; } = Gen.Choose(0, ushort.MaxValue).Select(p => (ushort)p);

    /// <summary>A byte outside printable ASCII: control, space, DEL or non-ASCII.</summary>
    // Declared before the generators below use them: static initializers run in order.
    private static Gen<byte> Unprintable { get; } =
        Gen.OneOf(Gen.Choose(0x00, 0x20), Gen.Choose(0x7F, 0xFF)).Select(b => (byte)b);

    /// <summary>1..40 bytes that are not UTF-8: a lone continuation byte, 0xFF, an encoded surrogate or a cut sequence.</summary>
    private static Gen<byte[]> NotUtf8 { get; } =
        from prefix in Credential(0, maxBytes: 20)
        from bad in Gen.Elements(new byte[][] { [0x80], [0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE2, 0x82] })
        select (byte[])[.. Encoding.UTF8.GetBytes(prefix), .. bad];

    /// <summary>An IPv4 address that is not SOCKS4a's 0.0.0.x marker.</summary>
    public static Gen<IPAddress> IPv4 { get; } =
        Gen.Zip(Gen.Choose(1, 255), Gen.Choose(0, 255).ArrayOf(3))
            .Select(t => new IPAddress([(byte)t.Item1, .. t.Item2.Select(b => (byte)b)]));

    /// <summary>An IPv6 address outside the IPv4-mapped range (which parses back as IPv4).</summary>
    public static Gen<IPAddress> IPv6 { get; } =
        Gen.Zip(Gen.Choose(1, 255), Gen.Choose(0, 255).ArrayOf(15))
            .Select(t => new IPAddress([(byte)t.Item1, .. t.Item2.Select(b => (byte)b)]));

    /// <summary>A host name of 1..255 printable ASCII bytes (0x21..0x7E), as the codecs accept.</summary>
    public static Gen<string> HostName { get; } =
        Gen.Choose(1, 255).SelectMany(length => Gen.Choose(0x21, 0x7E).ArrayOf(length))
            .Select(chars => new string(chars.Select(c => (char)c).ToArray()));

    public static Gen<SocksEndpoint> Socks5Destination { get; } = Gen.OneOf(
        Gen.Zip(IPv4, Port).Select(t => SocksEndpoint.FromAddress(t.Item1, t.Item2)),
        Gen.Zip(IPv6, Port).Select(t => SocksEndpoint.FromAddress(t.Item1, t.Item2)),
        Gen.Zip(HostName, Port).Select(t => SocksEndpoint.FromHost(t.Item1, t.Item2)));

    public static Gen<Socks5Request> Socks5Request { get; } =
        from command in Gen.Elements(new[] { SocksCommand.Connect, SocksCommand.Bind, SocksCommand.UdpAssociate })
        from destination in Socks5Destination
        select new Socks5Request(command, destination);

    /// <summary>SOCKS4 (an IPv4 destination) or SOCKS4a (a host name), with a USERID of 0..255 bytes.</summary>
    public static Gen<Socks4Request> Socks4Request { get; } =
        from command in Gen.Elements(new[] { SocksCommand.Connect, SocksCommand.Bind })
        from destination in Gen.OneOf(
            Gen.Zip(IPv4, Port).Select(t => SocksEndpoint.FromAddress(t.Item1, t.Item2)),
            Gen.Zip(HostName, Port).Select(t => SocksEndpoint.FromHost(t.Item1, t.Item2)))
        from userId in Credential(0)
        select new Socks4Request(command, destination, userId);

    /// <summary>An RFC 1929 request: a name of 1..255 UTF-8 bytes and a password of 0..255.</summary>
    public static Gen<UserPassRequest> UserPassRequest { get; } =
        Gen.Zip(Credential(1), Credential(0)).Select(t => new UserPassRequest(t.Item1, t.Item2));

    public static Gen<byte[]> Socks5RequestWire { get; } = Socks5Request.Select(r => Write(w => Socks5Codec.WriteRequest(r, w)));

    public static Gen<byte[]> Socks4RequestWire { get; } = Socks4Request.Select(r => Write(w => Socks4Codec.WriteRequest(r, w)));

    public static Gen<byte[]> UserPassRequestWire { get; } = UserPassRequest.Select(r => Write(w => UserPassCodec.WriteRequest(r, w)));

    /// <summary>A SOCKS5 request with one defect: VER, CMD, RSV, ATYP, or (ATYP 3) an empty or unprintable name.</summary>
    public static Gen<MalformedWire> MalformedSocks5Request { get; } = Gen.OneOf(
        Defect(Socks5RequestWire, 0, NotIn(5), SocksRejection.BadVersion),
        Defect(Socks5RequestWire, 1, NotIn(1, 2, 3), SocksRejection.BadCommand),
        Defect(Socks5RequestWire, 2, NotIn(0), SocksRejection.BadReservedByte),
        Defect(Socks5RequestWire, 3, NotIn(1, 3, 4), SocksRejection.BadAddressType),
        Gen.Zip(Socks5Request, Port).Select(t => new MalformedWire(
            [5, (byte)t.Item1.Command, 0, 3, 0, (byte)(t.Item2 >> 8), (byte)t.Item2], SocksRejection.EmptyDomainName)),
        from name in HostName
        from bad in Unprintable
        from at in Gen.Choose(0, 254)
        select new MalformedWire([5, 1, 0, 3, (byte)name.Length, .. Spoil(name, at, bad), 0, 80], SocksRejection.BadDomainName));

    /// <summary>A SOCKS4/4a request with one defect: VN, CD, the USERID's encoding or NUL, or the 4a host name.</summary>
    public static Gen<MalformedWire> MalformedSocks4Request { get; } = Gen.OneOf(
        Defect(Socks4RequestWire, 0, NotIn(4), SocksRejection.BadVersion),
        Defect(Socks4RequestWire, 1, NotIn(1, 2), SocksRejection.BadCommand),
        Gen.Zip(Port, NotUtf8).Select(t => new MalformedWire([4, 1, (byte)(t.Item1 >> 8), (byte)t.Item1, 192, 0, 2, 1, .. t.Item2, 0],
            SocksRejection.BadCredentialsEncoding)),
        Gen.Choose(256, 400).Select(n => new MalformedWire([4, 1, 0, 80, 192, 0, 2, 1, .. Enumerable.Repeat((byte)'u', n)],
            SocksRejection.TooLong)),
        Port.Select(p => new MalformedWire([4, 1, (byte)(p >> 8), (byte)p, 0, 0, 0, 1, 0, 0], SocksRejection.EmptyDomainName)),
        // NUL would end the name early: every other unprintable byte spoils it.
        from name in HostName
        from bad in Unprintable.Where(b => b != 0)
        from at in Gen.Choose(0, 254)
        select new MalformedWire([4, 1, 0, 80, 0, 0, 0, 1, 0, .. Spoil(name, at, bad), 0], SocksRejection.BadDomainName),
        Gen.Choose(256, 400).Select(n => new MalformedWire([4, 1, 0, 80, 0, 0, 0, 1, 0, .. Enumerable.Repeat((byte)'h', n)],
            SocksRejection.TooLong)));

    /// <summary>An RFC 1929 request with one defect: VER, an empty name, or a name or password that is not UTF-8.</summary>
    public static Gen<MalformedWire> MalformedUserPassRequest { get; } = Gen.OneOf(
        Defect(UserPassRequestWire, 0, NotIn(1), SocksRejection.BadUserPassVersion),
        Credential(0).Select(p => Write(w => UserPassCodec.WriteRequest(new UserPassRequest("x", p), w)))
            .Select(wire => new MalformedWire([1, 0, .. wire[3..]], SocksRejection.EmptyUserName)),
        Gen.Zip(NotUtf8, Credential(0)).Select(t => new MalformedWire(
            [1, (byte)t.Item1.Length, .. t.Item1, .. Field(t.Item2)], SocksRejection.BadCredentialsEncoding)),
        Gen.Zip(Credential(1), NotUtf8).Select(t => new MalformedWire(
            [1, .. Field(t.Item1), (byte)t.Item2.Length, .. t.Item2], SocksRejection.BadCredentialsEncoding)));

    /// <summary>Any bytes, 0..300 long: what a hostile or confused client may send.</summary>
    public static Gen<byte[]> Garbage { get; } =
        Gen.Choose(0, 300).SelectMany(n => Gen.Choose(0, 255).ArrayOf(n)).Select(b => b.Select(x => (byte)x).ToArray());

    /// <summary>A string of <paramref name="minBytes"/>..<paramref name="maxBytes"/> UTF-8 bytes built from <see cref="CredentialPieces"/>.</summary>
    public static Gen<string> Credential(int minBytes, int maxBytes = 255) =>
        Gen.Elements(CredentialPieces).ArrayOf().Select(pieces =>
        {
            var text = new StringBuilder();
            foreach (var piece in pieces)
            {
                if (Encoding.UTF8.GetByteCount(text.ToString() + piece) > maxBytes)
                {
                    break;
                }

                text.Append(piece);
            }

            while (Encoding.UTF8.GetByteCount(text.ToString()) < minBytes)
            {
                text.Append('m');
            }

            return text.ToString();
        });

    private static Gen<byte> NotIn(params byte[] allowed) =>
        Gen.Choose(0, 255).Select(b => (byte)b).Where(b => !allowed.Contains(b));

    /// <summary>A valid message from <paramref name="valid"/> with the byte at <paramref name="offset"/> replaced.</summary>
    private static Gen<MalformedWire> Defect(Gen<byte[]> valid, int offset, Gen<byte> bad, SocksRejection reason) =>
        Gen.Zip(valid, bad).Select(t =>
        {
            var wire = (byte[])t.Item1.Clone();
            wire[offset] = t.Item2;
            return new MalformedWire(wire, reason);
        });

    /// <summary>The ASCII bytes of <paramref name="name"/> with one of them replaced by <paramref name="with"/>.</summary>
    private static byte[] Spoil(string name, int at, byte with)
    {
        var bytes = Encoding.ASCII.GetBytes(name);
        bytes[at % bytes.Length] = with;
        return bytes;
    }

    private static byte[] Field(string text) => [(byte)Encoding.UTF8.GetByteCount(text), .. Encoding.UTF8.GetBytes(text)];

    private static byte[] Write(Action<IBufferWriter<byte>> write)
    {
        var writer = new ArrayBufferWriter<byte>();
        write(writer);
        return writer.WrittenSpan.ToArray();
    }
}
