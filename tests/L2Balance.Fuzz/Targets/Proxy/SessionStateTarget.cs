using System.Buffers;
using System.Net;
using L2Balance.Fuzz.Engine;
using L2Balance.Proxy.Migration;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Fuzz.Targets.Proxy;

/// <summary>
/// The frozen-session format of live migration (<see cref="SessionStateCodec.TryParse"/>, issue 19): a
/// state arrives whole in one channel record, so it is Ok or Invalid with a reason, never NeedMoreData;
/// an accepted state is written back byte for byte.
/// </summary>
public sealed class SessionStateTarget : FuzzTarget<byte[], SessionStateTarget.Result>
{
    public override string Name => "session-state";

    public override string Product => "proxy";

    public override string EntryPoint => "SessionStateCodec.TryParse";

    public override int MaxInputLength => 2048;

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        Encode(new SessionState(SessionKind.TcpRelay, [Leg("198.18.0.100:1080", "198.18.0.10:40000", 40, 8, 16), Leg("198.18.0.100:50000", "198.18.1.5:9000", 0, 0, 0)], [1, 2], [], null)),
        // A relay on the IPv6 VIP (single-IP mode over IPv6): both legs IPv6.
        Encode(new SessionState(SessionKind.TcpRelay, [Leg("[fdc6:1200:10::a]:1080", "[fdc6:1200:64::7]:40000", 24, 4, 8), Leg("[fdc6:1200:10::a]:33001", "[fdc6:1200:128::2]:9000", 0, 0, 0)], [3], [4], null)),
        Encode(new SessionState(SessionKind.UdpAssociation, [Leg("[fd00:5eed::100]:1080", "[fd00:5eed::10]:40000", 3, 3, 0)], [], [7],
            new UdpAssociationState(IPEndPoint.Parse("[fd00:5eed::10]:5353"), IPEndPoint.Parse("[fd00:5eed::100]:41000")))),
        Encode(new SessionState(SessionKind.UdpAssociation, [Leg("198.18.0.100:1080", "198.18.0.10:40000", 0, 0, 2)], [], [],
            new UdpAssociationState(IPEndPoint.Parse("198.18.0.10:5353"), IPEndPoint.Parse("198.18.0.100:41000"),
                IPEndPoint.Parse("198.18.0.100:41001"), null, 0x02, "user"))),
    ];

    protected override byte[] Convert(byte[] input, ref FuzzRandom random) => input;

    protected override Result Parse(byte[] input)
    {
        var status = SessionStateCodec.TryParse(input, out var state, out var reason);
        return new Result(status, state, reason);
    }

    protected override bool IsAccepted(Result result) => result.Status == ParseStatus.Ok;

    protected override void Check(byte[] input, Result result)
    {
        Require(result.Status != ParseStatus.NeedMoreData, "NeedMoreData for a whole state");
        Require(result.Status == ParseStatus.Ok ? result.State is not null && result.Reason == SessionStateRejection.None : result.State is null && result.Reason != SessionStateRejection.None,
            $"{result.Status} with reason {result.Reason}");
        if (result.State is { } state)
        {
            Require(Encode(state).AsSpan().SequenceEqual(input), "an accepted state is not written back byte for byte");
        }
    }

    private static TcpLegState Leg(string local, string remote, int sendQueue, int unsent, int receiveQueue) => new(
        IPEndPoint.Parse(local), IPEndPoint.Parse(remote), 1_000_000, 0xFFFF_FF00, new byte[sendQueue], unsent, new byte[receiveQueue], 1448,
        TcpLegOptions.Sack | TcpLegOptions.Timestamps | TcpLegOptions.WindowScale, 7, 7, 123456, new TcpLegWindow(1, 65535, 65535, 65535, 0xFFFF_FF00));

    private static byte[] Encode(SessionState state)
    {
        var writer = new ArrayBufferWriter<byte>();
        SessionStateCodec.Write(state, writer);
        return writer.WrittenSpan.ToArray();
    }

    public readonly record struct Result(ParseStatus Status, SessionState? State, SessionStateRejection Reason);
}
