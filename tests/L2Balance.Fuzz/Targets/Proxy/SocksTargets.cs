using System.Buffers;
using System.Net;
using System.Text;
using FsCheck;
using L2Balance.Proxy.Protocol;
using static L2Balance.Fuzz.Targets.Proxy.ProxyGen;

namespace L2Balance.Fuzz.Targets.Proxy;

/// <summary>SOCKS4 and SOCKS4a requests (<see cref="Socks4Codec.TryParseRequest"/>).</summary>
public sealed class Socks4RequestTarget : SocksStreamTarget<Socks4Request>
{
    public override string Name => "socks4-request";

    public override string EntryPoint => "Socks4Codec.TryParseRequest";

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        Wire(w => Socks4Codec.WriteRequest(new(SocksCommand.Connect, SocksEndpoint.FromAddress(IPAddress.Parse("198.18.0.1"), 80), ""), w)),
        Wire(w => Socks4Codec.WriteRequest(new(SocksCommand.Bind, SocksEndpoint.FromAddress(IPAddress.Parse("198.18.0.2"), 0), "user\nname"), w)),
        Wire(w => Socks4Codec.WriteRequest(new(SocksCommand.Connect, SocksEndpoint.FromHost("example.com", 443), "u"), w)),
        Wire(w => Socks4Codec.WriteRequest(new(SocksCommand.Connect, SocksEndpoint.FromHost(new string('h', 255), 1), new string('u', 255)), w)),
    ];

    public override Gen<byte[]> Generator => Socks4Requests;

    protected override ParseStatus TryParse(in ReadOnlySequence<byte> input, out Socks4Request value, out int consumed, out SocksRejection reason) =>
        Socks4Codec.TryParseRequest(input, out value, out consumed, out reason);

    protected override void Write(Socks4Request value, IBufferWriter<byte> output) => Socks4Codec.WriteRequest(value, output);

    /// <summary>SOCKS4a's marker 0.0.0.x is any x ≠ 0; the writer sends 0.0.0.1.</summary>
    protected override byte[] Canonical(byte[] message)
    {
        byte[] canonical = (byte[])message.Clone();
        if (canonical[4] == 0 && canonical[5] == 0 && canonical[6] == 0 && canonical[7] != 0)
        {
            canonical[7] = 1;
        }

        return canonical;
    }
}

/// <summary>The SOCKS5 greeting (<see cref="Socks5Codec.TryParseGreeting"/>).</summary>
public sealed class Socks5GreetingTarget : SocksStreamTarget<Socks5Greeting>
{
    public override string Name => "socks5-greeting";

    public override string EntryPoint => "Socks5Codec.TryParseGreeting";

    public override IReadOnlyList<byte[]> Seeds { get; } = [[5, 1, 0], [5, 2, 0, 2], [5, 3, 0, 1, 2], [5, 255, .. Enumerable.Range(0, 255).Select(b => (byte)b)]];

    public override Gen<byte[]> Generator => Socks5Greetings;

    protected override ParseStatus TryParse(in ReadOnlySequence<byte> input, out Socks5Greeting value, out int consumed, out SocksRejection reason) =>
        Socks5Codec.TryParseGreeting(input, out value, out consumed, out reason);

    protected override void Write(Socks5Greeting value, IBufferWriter<byte> output) => Socks5Codec.WriteGreeting(value.Methods.Span, output);
}

/// <summary>The SOCKS5 request (<see cref="Socks5Codec.TryParseRequest"/>).</summary>
public sealed class Socks5RequestTarget : SocksStreamTarget<Socks5Request>
{
    public override string Name => "socks5-request";

    public override string EntryPoint => "Socks5Codec.TryParseRequest";

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        Wire(w => Socks5Codec.WriteRequest(new(SocksCommand.Connect, SocksEndpoint.FromAddress(IPAddress.Parse("198.18.0.1"), 80)), w)),
        Wire(w => Socks5Codec.WriteRequest(new(SocksCommand.Bind, SocksEndpoint.FromAddress(IPAddress.Parse("2001:db8::1"), 0)), w)),
        Wire(w => Socks5Codec.WriteRequest(new(SocksCommand.UdpAssociate, SocksEndpoint.FromAddress(IPAddress.Any, 0)), w)),
        Wire(w => Socks5Codec.WriteRequest(new(SocksCommand.Connect, SocksEndpoint.FromHost("example.com", 443)), w)),
        Wire(w => Socks5Codec.WriteRequest(new(SocksCommand.Connect, SocksEndpoint.FromHost(new string('n', 255), 65535)), w)),
    ];

    public override Gen<byte[]> Generator => Socks5Requests;

    protected override ParseStatus TryParse(in ReadOnlySequence<byte> input, out Socks5Request value, out int consumed, out SocksRejection reason) =>
        Socks5Codec.TryParseRequest(input, out value, out consumed, out reason);

    protected override void Write(Socks5Request value, IBufferWriter<byte> output) => Socks5Codec.WriteRequest(value, output);
}

/// <summary>RFC 1929 username/password requests (<see cref="UserPassCodec.TryParseRequest"/>).</summary>
public sealed class UserPassRequestTarget : SocksStreamTarget<UserPassRequest>
{
    public override string Name => "userpass-request";

    public override string EntryPoint => "UserPassCodec.TryParseRequest";

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        Wire(w => UserPassCodec.WriteRequest(new("alice", "secret"), w)),
        Wire(w => UserPassCodec.WriteRequest(new("u", ""), w)),
        Wire(w => UserPassCodec.WriteRequest(new("evil\nINFO forged line", "p\u00e4ss"), w)),
        Wire(w => UserPassCodec.WriteRequest(new(new string('n', 255), new string('p', 255)), w)),
    ];

    public override Gen<byte[]> Generator => UserPassRequests;

    public override IReadOnlyList<byte[]> Tokens { get; } = [[1], [0], [255], Encoding.UTF8.GetBytes("\u00e9")];

    protected override ParseStatus TryParse(in ReadOnlySequence<byte> input, out UserPassRequest value, out int consumed, out SocksRejection reason) =>
        UserPassCodec.TryParseRequest(input, out value, out consumed, out reason);

    protected override void Write(UserPassRequest value, IBufferWriter<byte> output) => UserPassCodec.WriteRequest(value, output);
}

/// <summary>RFC 1961 GSS-API messages (<see cref="GssapiCodec.TryParseMessage(in ReadOnlySequence{byte}, out GssapiMessage, out int, out SocksRejection)"/>).</summary>
public sealed class GssapiMessageTarget : SocksStreamTarget<GssapiMessage>
{
    public override string Name => "gssapi-message";

    public override string EntryPoint => "GssapiCodec.TryParseMessage";

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        [1, 0xFF],
        Wire(w => GssapiCodec.WriteMessage(GssapiMessageType.Authentication, [0x60, 0x82, 0x02, 0x10, 0x06, 0x09], w)),
        Wire(w => GssapiCodec.WriteMessage(GssapiMessageType.ProtectionLevel, [0x02], w)),
        Wire(w => GssapiCodec.WriteMessage(GssapiMessageType.Encapsulated, new byte[300], w)),
    ];

    public override Gen<byte[]> Generator => GssapiMessages;

    public override IReadOnlyList<byte[]> Tokens { get; } = [[1], [0xFF], [0x40, 0x00], [0xFF, 0xFF], [0x60, 0x82]];

    protected override ParseStatus TryParse(in ReadOnlySequence<byte> input, out GssapiMessage value, out int consumed, out SocksRejection reason) =>
        GssapiCodec.TryParseMessage(input, out value, out consumed, out reason);

    protected override void Write(GssapiMessage value, IBufferWriter<byte> output) => GssapiCodec.WriteMessage(value.Type, value.Token.Span, output);
}
