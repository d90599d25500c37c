using System.Net;
using System.Net.Sockets;

namespace L2Balance.Proxy.Server;

/// <summary>Resolves a request's domain name; injected so tests can replace DNS (docs/conventions.md §8).</summary>
public interface INameResolver
{
    /// <summary>Addresses for <paramref name="host"/>; an empty array when the name does not exist.</summary>
    public ValueTask<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken);
}

/// <summary>The system resolver (getaddrinfo on a worker thread, so never blocking the caller).</summary>
public sealed class SystemNameResolver : INameResolver
{
    public async ValueTask<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(host, out var literal))
        {
            return [literal];
        }
        try
        {
            return await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            return [];
        }
    }
}
