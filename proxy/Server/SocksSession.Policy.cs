using System.Net;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Server;

/// <summary>The default policy of a session (issue 13): protected destinations and probe-only connections.</summary>
internal sealed partial class SocksSession
{
    /// <summary>
    /// A request from a probe-only connection (<see cref="ProbeOnly"/>): its client is one no client rule
    /// passes, so it is refused as a client rule refuses, with reply 2 (SOCKS4: 91) where a reply can be read.
    /// </summary>
    private async Task<SessionOutcome> RefuseProbeOnlyAsync(bool replyToRequest)
    {
        if (replyToRequest)
        {
            await _handshake.ReadAsync<Socks5Request>(_client, Socks5Codec.TryParseRequest).ConfigureAwait(false);
        }
        if (replyToRequest || _version == 4)
        {
            await TrySendReplyAsync(ReplyCode.NotAllowedByRuleset, null).ConfigureAwait(false);
        }
        Log.ClientRefused(Client, Local, "no client rule passes it (a connection from this node to its own address may only negotiate methods)");
        return SessionOutcome.ClientBlocked;
    }

    /// <summary>Evaluates the socks rules for a request and logs a block.</summary>
    private RuleVerdict Check(RuleCommand command, IPEndPoint from, SocksEndpoint destination, IPAddress? resolved, RuleProtocol protocol)
    {
        var verdict = Evaluate(command, from, destination, resolved, protocol);
        if (!verdict.Passed)
        {
            LogRefusal(in verdict, command, from, destination);
        }
        return verdict;
    }

    /// <summary>
    /// Evaluates the socks rules; a CONNECT, BIND or UDP destination that is protected (loopback, the
    /// node's own addresses...) passes only by a rule that names it (docs/sockd-conf.md#protected-destinations).
    /// A BIND naming no address (0.0.0.0, ::) names no destination.
    /// </summary>
    private RuleVerdict Evaluate(RuleCommand command, IPEndPoint from, SocksEndpoint destination, IPAddress? resolved, RuleProtocol protocol)
    {
        var address = destination.Address ?? resolved;
        var protection = address is null || command is RuleCommand.BindReply or RuleCommand.UdpReply
            || (command == RuleCommand.Bind && (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any)))
            ? DestinationClass.Ordinary
            : ProtectedDestinations.Classify(address, _server.NodeAddresses);
        var context = new SocksRequestContext(from, destination, resolved, command, protocol, _method, _user, protection);
        return RuleEvaluator.EvaluateSocks(Options.SocksRules, in context);
    }

    /// <summary>Logs a refused request: a protected destination by its own event, any other block as the rule says.</summary>
    private void LogRefusal(in RuleVerdict verdict, RuleCommand command, IPEndPoint from, SocksEndpoint destination)
    {
        if (verdict.Protected != DestinationClass.Ordinary)
        {
            Log.DestinationRefused(verdict.Protected, CommandName(command), from, destination.ToString());
        }
        else
        {
            Log.RequestBlocked(in verdict, CommandName(command), from, destination.ToString());
        }
    }

    /// <summary>Counts a refused CONNECT or BIND whose destination is protected.</summary>
    internal void CountRefusal(in RuleVerdict verdict)
    {
        if (verdict.Protected != DestinationClass.Ordinary)
        {
            _server.Counters.DestinationRefused(verdict.Protected);
        }
    }
}
