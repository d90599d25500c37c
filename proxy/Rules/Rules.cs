using System.Net;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Rules;

public enum RuleAction
{
    Pass,
    Block,
}

/// <summary>Dante <c>command:</c> values. BindReply and UdpReply match the inbound side (a BIND's
/// incoming connection, a UDP reply from a target), as in Dante.</summary>
public enum RuleCommand
{
    Connect,
    Bind,
    UdpAssociate,
    BindReply,
    UdpReply,
}

/// <summary>Dante <c>log:</c> keywords on a rule.</summary>
[Flags]
public enum RuleLog
{
    None = 0,
    Connect = 1,
    Disconnect = 2,
    Data = 4,
    Error = 8,
    IOOperation = 16,
    TcpInfo = 32,
}

/// <summary>Dante transport <c>protocol:</c> values.</summary>
[Flags]
public enum RuleProtocol
{
    None = 0,
    Tcp = 1,
    Udp = 2,
    Any = Tcp | Udp,
}

/// <summary>
/// One side of a rule (<c>from:</c> or <c>to:</c>): an address/prefix, a domain
/// (<c>example.com</c> exactly or <c>.example.com</c> for it and its subdomains), or any.
/// An optional port operator applies (<c>port = 80</c>, <c>port 1-1024</c>, <c>port gt 1023</c>).
/// </summary>
public sealed record AddressMatcher(IPAddress? Network, int PrefixLength, string? Domain, PortMatcher? Port)
{
    public static AddressMatcher Any { get; } = new(null, 0, null, null);
}

public enum PortOperator
{
    Eq,
    Neq,
    Ge,
    Le,
    Gt,
    Lt,
    Range,
}

/// <summary>Dante port operators: <c>eq/=</c>, <c>neq/!=</c>, <c>ge/&gt;=</c>, <c>le/&lt;=</c>, <c>gt/&gt;</c>, <c>lt/&lt;</c>, and <c>LO-HI</c>.</summary>
public readonly record struct PortMatcher(PortOperator Operator, ushort Port, ushort High = 0);

/// <summary>Position of a rule in its file, for logs ("rule #3, line 17").</summary>
public readonly record struct RuleSource(int Number, int Line);

/// <summary>A <c>client pass|block { from: to: port log }</c> rule; <paramref name="Gssapi"/> holds its <c>gssapi.*</c> and <c>clientcompatibility</c> settings.</summary>
public sealed record ClientRule(RuleAction Action, AddressMatcher From, AddressMatcher To, RuleLog Log, RuleSource Source, GssapiSettings? Gssapi = null);

/// <summary>
/// A client rule's GSS-API settings (RFC 1961): <c>gssapi.keytab</c>, <c>gssapi.servicename</c> (null: the
/// process-wide flag or default), <c>gssapi.enctype</c> (the protection levels the server accepts; null: all),
/// and <c>clientcompatibility: necgssapi</c> (the protection-level message travels unwrapped, as NEC's client sends it).
/// </summary>
public sealed record GssapiSettings(string? Keytab, string? ServiceName, IReadOnlySet<GssapiProtection>? EncTypes, bool NecCompatibility);

/// <summary>A <c>socks pass|block { from: to: command: protocol: socksmethod: user: udp.portrange: log: }</c> rule.</summary>
public sealed record SocksRule(
    RuleAction Action,
    AddressMatcher From,
    AddressMatcher To,
    IReadOnlySet<RuleCommand>? Commands,
    RuleProtocol Protocols,
    IReadOnlySet<MethodKind>? Methods,
    IReadOnlySet<string>? Users,
    PortRange? UdpPortRange,
    RuleLog Log,
    RuleSource Source);

/// <summary>What a socks rule is matched against.</summary>
/// <param name="Client">The client's address and port.</param>
/// <param name="Destination">The request's destination as the client sent it (address or name).</param>
/// <param name="ResolvedDestination">The destination address once a name was resolved; null if not (yet) resolved.</param>
/// <param name="Command">The SOCKS command, or BindReply/UdpReply for inbound traffic.</param>
/// <param name="Protocol">Tcp for CONNECT/BIND, Udp for UDP ASSOCIATE and its datagrams.</param>
/// <param name="Method">The method the client authenticated with.</param>
/// <param name="User">The authenticated user name, if any.</param>
/// <param name="Protection">The class of the destination address when it is one never relayed unless a rule names it
/// (CONNECT, BIND, UDP destinations; <see cref="ProtectedDestinations"/>); Ordinary otherwise.</param>
public readonly record struct SocksRequestContext(
    IPEndPoint Client,
    SocksEndpoint Destination,
    IPAddress? ResolvedDestination,
    RuleCommand Command,
    RuleProtocol Protocol,
    MethodKind Method,
    string? User,
    DestinationClass Protection = DestinationClass.Ordinary);

/// <summary>The result of evaluating rules: the action and the rule that decided (null: no rule matched, so blocked).
/// <see cref="Protected"/> is not Ordinary when a pass rule matched but did not name that protected destination.</summary>
public readonly record struct RuleVerdict(RuleAction Action, RuleLog Log, RuleSource? Rule, PortRange? UdpPortRange, DestinationClass Protected = DestinationClass.Ordinary, GssapiSettings? Gssapi = null)
{
    public bool Passed => Action == RuleAction.Pass;
}
