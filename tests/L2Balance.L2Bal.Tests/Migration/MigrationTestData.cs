using System.Net;
using L2Balance.Balancer.Migration;

namespace L2Balance.L2Bal.Tests.Migration;

/// <summary>Sessions as l2proxy lists them, for the planning and running tests.</summary>
internal static class MigrationTestData
{
    public const string Vip = "198.18.0.10";

    /// <summary>A CONNECT session of client 198.18.1.<paramref name="client"/> from port 40000+n, its target leg from the slice port 33000+n.</summary>
    public static ProxySession Session(int n, int client, string? stays = null) => Line(
        $"session s{n} connect 198.18.1.{client}:{40000 + n} {Vip}:1080 {Vip}:{33000 + n} 198.18.2.7:443 {n * 10} {(stays is null ? "movable" : "stays=" + stays)}");

    public static ProxySession Line(string line)
    {
        if (!ProxySession.TryParse(line, out var session))
        {
            throw new ArgumentException($"not a session line: {line}", nameof(line));
        }
        return session!;
    }

    public static IPEndPoint Endpoint(string text) => IPEndPoint.Parse(text);
}
