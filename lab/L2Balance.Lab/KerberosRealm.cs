using System.Globalization;
using System.Net;

namespace L2Balance.Lab;

/// <summary>
/// A Kerberos realm of the lab (issue 20): Debian's MIT KDC (krb5-kdc) in a namespace of its own, its database,
/// stash, configuration and logs in the run's temp directory (KRB5_CONFIG and KRB5_KDC_PROFILE point there, never
/// to /etc), users with passwords, one service principal and its keytab (mode 600). Stopped with the lab.
/// </summary>
public sealed class KerberosRealm
{
    public const string DefaultRealm = "L2LAB.TEST";

    private KerberosRealm(string realm, string directory, string servicePrincipal, string keytab, LabProcess kdc)
    {
        Realm = realm;
        Directory = directory;
        ServicePrincipal = servicePrincipal;
        Keytab = keytab;
        Kdc = kdc;
    }

    public string Realm { get; }

    public string Directory { get; }

    /// <summary>The service's principal without the realm: <c>socks/vip.l2lab.test</c>.</summary>
    public string ServicePrincipal { get; }

    /// <summary>The keytab holding <see cref="ServicePrincipal"/>'s key (mode 600).</summary>
    public string Keytab { get; }

    public LabProcess Kdc { get; }

    public string ConfigPath => Path.Combine(Directory, "krb5.conf");

    /// <summary>The environment every Kerberos program of the lab gets: the lab's configuration, a replay cache in the temp directory.</summary>
    public IReadOnlyList<string> Environment =>
    [
        $"KRB5_CONFIG={ConfigPath}", $"KRB5_KDC_PROFILE={Path.Combine(Directory, "kdc.conf")}", $"KRB5RCACHEDIR={Directory}",
    ];

    /// <summary>
    /// Creates the realm: KDC at <paramref name="kdcAddress"/> (port 88, TCP) in <paramref name="kdcHost"/>, the service
    /// <c><paramref name="service"/>/<paramref name="serviceHost"/></c> and <paramref name="users"/>.
    /// </summary>
    public static async Task<KerberosRealm> CreateAsync(
        LabNetwork network, LabHost kdcHost, IPAddress kdcAddress, string service, string serviceHost,
        IEnumerable<(string User, string Password)> users, TimeSpan timeout, string realm = DefaultRealm)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(kdcHost);
        ArgumentNullException.ThrowIfNull(users);
        LabBinaries.Require("krb5kdc", "krb5-kdc");
        LabBinaries.Require("kadmin.local", "krb5-admin-server");
        LabBinaries.Require("kinit", "krb5-user");
        var dir = network.CreateTempDirectory("krb5");
        string domain = serviceHost[(serviceHost.IndexOf('.', StringComparison.Ordinal) + 1)..];
        await File.WriteAllTextAsync(Path.Combine(dir, "krb5.conf"), $$"""
            [libdefaults]
                default_realm = {{realm}}
                dns_canonicalize_hostname = false
                rdns = false
                dns_lookup_kdc = false
                dns_lookup_realm = false
                udp_preference_limit = 1
                default_ccache_name = FILE:{{dir}}/ccache-default
                default_keytab_name = FILE:{{dir}}/no-default.keytab
                clockskew = 300

            [realms]
                {{realm}} = {
                    kdc = {{kdcAddress}}:88
                }

            [domain_realm]
                .{{domain}} = {{realm}}
                {{domain}} = {{realm}}

            """).ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(dir, "kdc.conf"), $$"""
            [kdcdefaults]
                kdc_listen = {{kdcAddress}}:88
                kdc_tcp_listen = {{kdcAddress}}:88

            [realms]
                {{realm}} = {
                    database_name = {{dir}}/principal
                    key_stash_file = {{dir}}/stash
                    acl_file = {{dir}}/kadm5.acl
                    max_life = 1h
                    max_renewable_life = 0
                }

            [logging]
                kdc = FILE:{{dir}}/kdc.log

            """).ConfigureAwait(false);
        var master = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        await RunAsync(kdcHost, dir, "kdb5_util", ["create", "-s", "-r", realm, "-P", master], timeout).ConfigureAwait(false);
        string principal = $"{service}/{serviceHost}";
        string keytab = Path.Combine(dir, "service.keytab");
        foreach (var (user, password) in users)
        {
            await RunAsync(kdcHost, dir, "kadmin.local", ["-r", realm, "-q", $"addprinc -pw {password} {user}"], timeout).ConfigureAwait(false);
        }
        await RunAsync(kdcHost, dir, "kadmin.local", ["-r", realm, "-q", $"addprinc -randkey {principal}"], timeout).ConfigureAwait(false);
        // A second service the client can get tickets for, that the proxy has no key for: "ticket for another service".
        await RunAsync(kdcHost, dir, "kadmin.local", ["-r", realm, "-q", $"addprinc -randkey other/{serviceHost}"], timeout).ConfigureAwait(false);
        await RunAsync(kdcHost, dir, "kadmin.local", ["-r", realm, "-q", $"ktadd -k {keytab} {principal}"], timeout).ConfigureAwait(false);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(keytab, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        var kdc = kdcHost.Start("/usr/bin/env", [.. Env(dir), "krb5kdc", "-n", "-r", realm]);
        await kdcHost.WaitForTcpPortAsync(kdcAddress, 88, timeout, () => kdc.Describe(), kdc).ConfigureAwait(false);
        return new KerberosRealm(realm, dir, principal, keytab, kdc);
    }

    /// <summary>Gets a ticket for <paramref name="user"/> with kinit in <paramref name="host"/>; returns its credential cache (one per user).</summary>
    public async Task<string> KinitAsync(LabHost host, string user, string password, TimeSpan timeout, string? lifetime = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        string cache = Path.Combine(Directory, string.Create(CultureInfo.InvariantCulture, $"ccache-{user}-{Guid.NewGuid():N}"));
        var result = await host.RunAsync("/usr/bin/env", [.. Environment, $"KRB5CCNAME=FILE:{cache}", "kinit", .. (lifetime is null ? Array.Empty<string>() : ["-l", lifetime]), user],
            timeout, password + "\n").ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new LabCommandException($"kinit {user} failed: {result}\n{Kdc.Describe()}");
        }
        return cache;
    }

    /// <summary>Gets a service ticket for another principal into <paramref name="cache"/> (kvno).</summary>
    public async Task KvnoAsync(LabHost host, string cache, string principal, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(host);
        var result = await host.RunAsync("/usr/bin/env", [.. Environment, $"KRB5CCNAME=FILE:{cache}", "kvno", principal], timeout).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new LabCommandException($"kvno {principal} failed: {result}");
        }
    }

    private static string[] Env(string dir) =>
        [$"KRB5_CONFIG={dir}/krb5.conf", $"KRB5_KDC_PROFILE={dir}/kdc.conf", $"KRB5RCACHEDIR={dir}"];

    private static async Task RunAsync(LabHost host, string dir, string program, string[] args, TimeSpan timeout)
    {
        var result = await host.RunAsync("/usr/bin/env", [.. Env(dir), program, .. args], timeout).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new LabCommandException($"{program} {string.Join(' ', args)} failed: {result}");
        }
    }
}
