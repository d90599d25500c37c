using System.Buffers;
using System.Net.Sockets;
using L2Balance.Proxy.Auth;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Diagnostics;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Server;

/// <summary>
/// GSS-API authentication (RFC 1961): the context establishment loop, the protection-level subnegotiation, and
/// per-message protection of the request and reply. Every failure is the RFC's failure message X'01' X'FF'
/// (or a close when the client is gone), one log line, a counter; the session never goes on unauthenticated.
/// </summary>
internal sealed partial class SocksSession
{
    private GssapiContext? _gss;
    private GssapiProtection _protection;

    /// <summary>The matched client rule's <c>gssapi.*</c> settings; null: the flags' (or MIT's) defaults.</summary>
    public GssapiSettings? GssapiRule { get; init; }

    /// <summary>True once a GSS-API session agreed on integrity, confidentiality or per-message protection.</summary>
    private bool Protected => _gss is not null && _protection != GssapiProtection.Clear;

    /// <summary>Null when the client authenticated; otherwise the outcome, after the failure message.</summary>
    private async Task<SessionOutcome?> AuthenticateGssapiAsync()
    {
        _handshake.Grow(GssapiCodec.HeaderLength + GssapiCodec.MaxHandshakeTokenLength);
        IntPtr credential;
        try
        {
            credential = GssapiCredentials.Get(GssapiRule?.Keytab ?? Options.GssapiKeytab, GssapiRule?.ServiceName ?? Options.GssapiServiceName);
        }
        catch (GssapiException e)
        {
            return await GssapiRefuseAsync(e).ConfigureAwait(false);
        }
        var context = Own(new GssapiContext(credential));
        try
        {
            // As many round trips as the mechanism needs (one for Kerberos, two with mutual authentication).
            while (!context.IsEstablished)
            {
                var token = await ReadGssapiTokenAsync(GssapiMessageType.Authentication).ConfigureAwait(false);
                var output = context.Accept(token.Span);
                if (output.Length > 0)
                {
                    await SendGssapiAsync(GssapiMessageType.Authentication, output).ConfigureAwait(false);
                }
            }
            _gss = context;
            bool nec = GssapiRule?.NecCompatibility == true;
            var levelToken = await ReadGssapiTokenAsync(GssapiMessageType.ProtectionLevel).ConfigureAwait(false);
            // NEC's client sends the level octet unwrapped (clientcompatibility: necgssapi); RFC 1961 wraps it.
            var asked = GssapiCodec.ParseProtection(nec ? levelToken.Span : context.Unwrap(levelToken.Span, out _))
                ?? throw new GssapiException(GssapiFailure.ProtectionLevel, "the protection-level message is not one octet of 0 to 3");
            if (GssapiRule?.EncTypes is { } allowed && !allowed.Contains(asked))
            {
                throw new GssapiException(GssapiFailure.ProtectionLevel,
                    $"the client asked for protection {ProxyCounters.Snake(asked.ToString())}; gssapi.enctype allows {string.Join(", ", allowed.Order().Select(a => ProxyCounters.Snake(a.ToString())))}");
            }
            byte[] reply = [(byte)asked];
            await SendGssapiAsync(GssapiMessageType.ProtectionLevel, nec ? reply : context.Wrap(reply, confidential: false)).ConfigureAwait(false);
            _protection = asked;
        }
        catch (GssapiException e)
        {
            _gss = null;
            return await GssapiRefuseAsync(e).ConfigureAwait(false);
        }
        _method = MethodKind.Gssapi;
        _user = context.Principal;
        _server.Counters.GssapiEstablished(_protection);
        Log.GssapiAuthenticated(Client, context.Principal ?? string.Empty, _protection);
        return null;
    }

    /// <summary>Reads the next RFC 1961 message, which must be of <paramref name="expected"/> type, and returns its token.</summary>
    private async Task<ReadOnlyMemory<byte>> ReadGssapiTokenAsync(GssapiMessageType expected)
    {
        var (status, message, reason) = await _handshake.ReadAsync<GssapiMessage>(_client, GssapiCodec.TryParseMessage).ConfigureAwait(false);
        if (status != ParseStatus.Ok)
        {
            throw new GssapiException(reason == SocksRejection.GssapiTokenTooLarge ? GssapiFailure.Defective : GssapiFailure.Protocol,
                $"{expected} message: {reason}{(reason == SocksRejection.GssapiTokenTooLarge ? $" (more than {GssapiCodec.MaxHandshakeTokenLength} bytes)" : string.Empty)}");
        }
        if (message.Type != expected)
        {
            throw new GssapiException(GssapiFailure.Protocol, $"a {message.Type} message where {expected} was expected");
        }
        if (message.Token.IsEmpty)
        {
            throw new GssapiException(GssapiFailure.Defective, $"an empty {expected} token");
        }
        return message.Token;
    }

    /// <summary>Reads the SOCKS request of a protected session: one encapsulation message holding the whole request.</summary>
    private async Task<(ParseStatus Status, Socks5Request Request, SocksRejection Reason)> ReadProtectedRequestAsync()
    {
        var token = await ReadGssapiTokenAsync(GssapiMessageType.Encapsulated).ConfigureAwait(false);
        var plain = _gss!.Unwrap(token.Span, out bool confidential);
        if (_protection == GssapiProtection.Confidentiality && !confidential)
        {
            throw new GssapiException(GssapiFailure.ProtectionLevel, "a request without confidentiality at level confidentiality");
        }
        var status = Socks5Codec.TryParseRequest(new ReadOnlySequence<byte>(plain), out var request, out int consumed, out var reason);
        if (status == ParseStatus.NeedMoreData || status == ParseStatus.Ok && consumed != plain.Length)
        {
            // RFC 1961 section 5: a request is one message; a part or more than one is malformed.
            return (ParseStatus.Invalid, default, SocksRejection.Truncated);
        }
        return (status, request, reason);
    }

    /// <summary>Sends one RFC 1961 message (an allocation per message is nothing beside the Kerberos exchange).</summary>
    private async ValueTask SendGssapiAsync(GssapiMessageType type, ReadOnlyMemory<byte> token)
    {
        var writer = new ArrayBufferWriter<byte>(GssapiCodec.HeaderLength + token.Length);
        GssapiCodec.WriteMessage(type, token.Span, writer);
        await _client.SendAsync(writer.WrittenMemory, SocketFlags.None).ConfigureAwait(false);
    }

    /// <summary>Wraps a reply of a protected session into one encapsulation message and sends it.</summary>
    private async ValueTask SendProtectedAsync(ReadOnlyMemory<byte> reply)
    {
        var message = _gss!.Wrap(reply.Span, _protection != GssapiProtection.Integrity, GssapiCodec.HeaderLength);
        GssapiCodec.WriteHeader(message, GssapiMessageType.Encapsulated, message.Length - GssapiCodec.HeaderLength);
        await _client.SendAsync(message, SocketFlags.None).ConfigureAwait(false);
    }

    /// <summary>
    /// Unwraps a protected association's datagram from the client (one encapsulation message, RFC 1961 section 5) into
    /// the start of <paramref name="buffer"/>: the plaintext's length (the SOCKS UDP header and data), or -1 when the
    /// datagram is to be dropped: not one message, a token that fails (defective, replayed), or not confidential at level confidentiality.
    /// </summary>
    private int UnwrapDatagram(byte[] buffer, int length)
    {
        if (!GssapiCodec.TryParseDatagram(buffer.AsSpan(0, length), out var token))
        {
            return -1;
        }
        byte[] plain;
        try
        {
            plain = _gss!.Unwrap(token, out bool confidential);
            if (_protection == GssapiProtection.Confidentiality && !confidential)
            {
                return -1;
            }
        }
        catch (Exception e) when (e is GssapiException or ObjectDisposedException)
        {
            // A bad datagram costs the sender that datagram only: UDP has no stream to end (counted by the caller).
            return -1;
        }
        plain.CopyTo(buffer, 0);
        return plain.Length;
    }

    /// <summary>A datagram for the client (SOCKS UDP header and data) as one encapsulation message; null when it cannot be wrapped or is too long for LEN.</summary>
    private byte[]? WrapDatagram(ReadOnlySpan<byte> datagram)
    {
        byte[] message;
        try
        {
            message = _gss!.Wrap(datagram, _protection != GssapiProtection.Integrity, GssapiCodec.HeaderLength);
        }
        catch (Exception e) when (e is GssapiException or ObjectDisposedException)
        {
            return null;
        }
        if (message.Length - GssapiCodec.HeaderLength > GssapiCodec.MaxTokenLength)
        {
            return null;
        }
        GssapiCodec.WriteHeader(message, GssapiMessageType.Encapsulated, message.Length - GssapiCodec.HeaderLength);
        return message;
    }

    /// <summary>Counts, logs, and sends the failure message X'01' X'FF'.</summary>
    private async Task<SessionOutcome?> GssapiRefuseAsync(GssapiException e)
    {
        GssapiTokenFailed(e);
        try
        {
            var writer = new ArrayBufferWriter<byte>(2);
            GssapiCodec.WriteAbort(writer);
            await _client.SendAsync(writer.WrittenMemory, SocketFlags.None).ConfigureAwait(false);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        return SessionOutcome.AuthFailed;
    }

    /// <summary>A GSS-API failure of this session, in the handshake or the relay: counted and logged.</summary>
    internal void GssapiTokenFailed(GssapiException e)
    {
        _server.Counters.GssapiFailed(e.Failure);
        Log.GssapiFailed(Client, e.Failure, e.Message);
    }
}
