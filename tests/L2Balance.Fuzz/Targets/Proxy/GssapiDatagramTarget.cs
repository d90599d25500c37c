using FsCheck;
using L2Balance.Fuzz.Engine;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Fuzz.Targets.Proxy;

/// <summary>
/// A UDP datagram of a protected GSS-API association (<see cref="GssapiCodec.TryParseDatagram"/>): accepted only when it is
/// exactly one encapsulation message, whose token is then the rest of the datagram and whose header is written back byte for byte.
/// </summary>
public sealed class GssapiDatagramTarget : FuzzTarget<byte[], GssapiDatagramTarget.Result>
{
    public override string Name => "gssapi-datagram";

    public override string Product => "proxy";

    public override string EntryPoint => "GssapiCodec.TryParseDatagram";

    public override int MaxInputLength => 2048;

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        ProxyGen.Wire(w => GssapiCodec.WriteMessage(GssapiMessageType.Encapsulated, new byte[60], w)),
        ProxyGen.Wire(w => GssapiCodec.WriteMessage(GssapiMessageType.Encapsulated, [], w)),
    ];

    public override Gen<byte[]> Generator => ProxyGen.GssapiMessages;

    protected override byte[] Convert(byte[] input, ref FuzzRandom random) => input;

    protected override Result Parse(byte[] input) =>
        GssapiCodec.TryParseDatagram(input, out var token) ? new Result(true, token.ToArray()) : new Result(false, []);

    protected override bool IsAccepted(Result result) => result.Accepted;

    protected override void Check(byte[] input, Result result)
    {
        if (!result.Accepted)
        {
            return;
        }
        var header = new byte[GssapiCodec.HeaderLength];
        GssapiCodec.WriteHeader(header, GssapiMessageType.Encapsulated, result.Token.Length);
        Require(input.AsSpan(0, GssapiCodec.HeaderLength).SequenceEqual(header) && input.AsSpan(GssapiCodec.HeaderLength).SequenceEqual(result.Token),
            $"token of {result.Token.Length} bytes from a datagram of {input.Length}, header written back as {System.Convert.ToHexString(header)}");
    }

    public readonly record struct Result(bool Accepted, byte[] Token);
}
