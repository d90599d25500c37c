using System.Net;
using FsCheck;
using L2Balance.Fuzz.Engine;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Fuzz.Targets.Proxy;

/// <summary>
/// The SOCKS5 UDP header (<see cref="UdpHeaderCodec.TryParse"/>): a datagram arrives whole, so it
/// is Ok or Invalid with a reason, never NeedMoreData; an accepted header is written back byte for byte.
/// </summary>
public sealed class UdpHeaderTarget : FuzzTarget<byte[], UdpHeaderTarget.Result>
{
    public override string Name => "udp-header";

    public override string Product => "proxy";

    public override string EntryPoint => "UdpHeaderCodec.TryParse";

    public override int MaxInputLength => 2048;

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        ProxyGen.UdpWire(new UdpHeader(0, SocksEndpoint.FromAddress(IPAddress.Parse("198.18.0.1"), 53)), [1, 2, 3]),
        ProxyGen.UdpWire(new UdpHeader(0, SocksEndpoint.FromAddress(IPAddress.Parse("2001:db8::53"), 53)), []),
        ProxyGen.UdpWire(new UdpHeader(1, SocksEndpoint.FromHost("dns.example", 53)), new byte[512]),
    ];

    public override Gen<byte[]> Generator => ProxyGen.UdpDatagrams;

    protected override byte[] Convert(byte[] input, ref FuzzRandom random) => input;

    protected override Result Parse(byte[] input)
    {
        var status = UdpHeaderCodec.TryParse(input, out var header, out int length, out var reason);
        return new Result(status, header, length, reason);
    }

    protected override bool IsAccepted(Result result) => result.Status == ParseStatus.Ok;

    protected override void Check(byte[] input, Result result)
    {
        Require(result.Status != ParseStatus.NeedMoreData, "NeedMoreData for a whole datagram");
        Require(result.Status == ParseStatus.Ok ? result.Length > 0 && result.Length <= input.Length : result.Length == 0 && result.Reason != SocksRejection.None,
            $"{result.Status} with header length {result.Length} and reason {result.Reason}");
        if (result.Status != ParseStatus.Ok)
        {
            return;
        }

        var written = new byte[UdpHeaderCodec.GetLength(result.Header.Destination)];
        Require(UdpHeaderCodec.Write(result.Header, written) == result.Length && written.AsSpan().SequenceEqual(input.AsSpan(0, result.Length)),
            $"written back as {System.Convert.ToHexString(written)}");
    }

    public readonly record struct Result(ParseStatus Status, UdpHeader Header, int Length, SocksRejection Reason);
}
