using System.Text;
using L2Balance.Balancer.Control;
using L2Balance.Fuzz.Engine;

namespace L2Balance.Fuzz.Targets.Balancer;

/// <summary>
/// A control request as the control socket reads it (at most 256 bytes, decoded as UTF-8 and
/// trimmed), parsed by <see cref="ControlCommand.Parse"/>. A recognised command's canonical line
/// parses back to the same command.
/// </summary>
internal sealed class ControlRequestTarget : FuzzTarget<string, ControlCommand>
{
    /// <summary>The control socket's request limit (ControlServer).</summary>
    private const int MaxRequestBytes = 256;

    public override string Name => "control-request";

    public override string Product => "l2bal";

    public override string EntryPoint => "ControlCommand.Parse";

    public override int MaxInputLength => 400;

    public override IReadOnlyList<byte[]> Seeds { get; } =
        [.. new[] { "status", "status --json", "owner 198.18.0.77", "drain", "undrain", "owner 1", "  status   --json  \n" }.Select(Encoding.UTF8.GetBytes)];

    public override IReadOnlyList<byte[]> Tokens { get; } =
        [.. new[] { "status", "--json", "owner", "drain", "undrain", " ", "\n", "0x7f.1", "::ffff:1.2.3.4", "1.2.3.4%eth0" }.Select(Encoding.UTF8.GetBytes)];

    protected override string Convert(byte[] input, ref FuzzRandom random) =>
        Encoding.UTF8.GetString(input, 0, Math.Min(input.Length, MaxRequestBytes)).Trim();

    protected override ControlCommand Parse(string input) => ControlCommand.Parse(input);

    protected override bool IsAccepted(ControlCommand result) => result.Verb != ControlVerb.Unknown;

    protected override void Check(byte[] input, ControlCommand result)
    {
        Require(result.Verb != ControlVerb.Owner || (result.Address is { } owner && ControlCommand.IsClientAddress(owner)), $"owner without an IPv4 or IPv6 client address: {result}");
        if (result.Verb != ControlVerb.Unknown)
        {
            var again = ControlCommand.Parse(result.ToString());
            Require(again == result, $"'{result}' parses back as '{again}'");
        }
    }
}
