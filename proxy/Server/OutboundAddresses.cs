using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using L2Balance.Proxy.Config;

namespace L2Balance.Proxy.Server;

/// <summary>
/// Chooses the local address of outgoing sockets from Dante's <c>external</c> and
/// <c>external.rotation</c>: with rotation <c>none</c>, the first external address of the
/// destination's family; <c>same-same</c>, the address the client connected to; <c>route</c>,
/// whatever the kernel's route picks. Interfaces are resolved to their addresses at start.
/// With no external address of the needed family the kernel chooses (no explicit bind).
/// Single-IP mode (docs/design.md#single-ip-mode): an outgoing address that clients also connect to
/// (an <c>internal</c> address, in a cluster the VIP) is shared by every node, so outgoing sockets on
/// it take their ports from the node's port range (<see cref="IsShared"/>).
/// </summary>
public sealed class OutboundAddresses
{
    private readonly IPAddress? _ipv4;
    private readonly IPAddress? _ipv6;
    private readonly ExternalRotation _rotation;
    private readonly IPAddress[] _internal;

    public OutboundAddresses(IReadOnlyList<ExternalSpec> external, ExternalRotation rotation, IReadOnlyList<ListenSpec>? internalSpecs = null)
    {
        ArgumentNullException.ThrowIfNull(external);
        _rotation = rotation;
        _internal = [.. (internalSpecs ?? []).Where(s => s.Address is not null).Select(s => Normalize(s.Address!))];
        foreach (var address in external.SelectMany(Expand))
        {
            if (address.AddressFamily == AddressFamily.InterNetwork)
            {
                _ipv4 ??= address;
            }
            else if (address.AddressFamily == AddressFamily.InterNetworkV6 && !address.IsIPv6LinkLocal)
            {
                _ipv6 ??= address;
            }
        }
    }

    /// <summary>The address to bind an outgoing socket to, or null to let the kernel choose.</summary>
    public IPAddress? For(AddressFamily family, IPAddress clientFacingLocal)
    {
        ArgumentNullException.ThrowIfNull(clientFacingLocal);
        return _rotation switch
        {
            ExternalRotation.Route => null,
            ExternalRotation.SameSame => Normalize(clientFacingLocal).AddressFamily == family ? Normalize(clientFacingLocal) : null,
            _ => family == AddressFamily.InterNetwork ? _ipv4 : _ipv6,
        };
    }

    /// <summary>
    /// Whether <paramref name="source"/> is an address clients connect to (the one this client reached,
    /// or any <c>internal</c> address): then the node shares it and its ports come from the port range.
    /// </summary>
    public bool IsShared(IPAddress source, IPAddress clientFacingLocal)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(clientFacingLocal);
        var s = Normalize(source);
        return s.Equals(Normalize(clientFacingLocal)) || Array.IndexOf(_internal, s) >= 0;
    }

    /// <summary>Addresses of an external or internal spec: the address itself, or an interface's addresses.</summary>
    public static IEnumerable<IPAddress> Expand(ExternalSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return spec.Address is not null ? [spec.Address] : InterfaceAddresses(spec.Interface!);
    }

    /// <summary>The unicast addresses of a network interface, or an exception naming it.</summary>
    public static IReadOnlyList<IPAddress> InterfaceAddresses(string name)
    {
        var nic = NetworkInterface.GetAllNetworkInterfaces().FirstOrDefault(n => n.Name == name)
            ?? throw new InvalidOperationException($"interface '{name}' does not exist");
        return nic.GetIPProperties().UnicastAddresses.Select(u => u.Address).ToArray();
    }

    public static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}
