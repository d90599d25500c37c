using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Health;
using Xunit;

namespace L2Balance.L2Bal.Tests.Health;

/// <summary>The DNS probe against UDP sockets of the test process on the loopback address; nothing leaves it.</summary>
public sealed class DnsHealthProbeTests
{
    /// <summary>Long enough for the answering task to start on a busy machine; only the silent case waits it out.</summary>
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task DnsProbe_ServerAnswering_Passes()
    {
        using var server = Server();
        var answered = Task.Run(() => AnswerOne(server, (query, reply) => reply));
        Assert.Equal(HealthProbeResult.Pass, HealthProbe.Run(Spec(server), Timeout));
        await answered.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task DnsProbe_StrayReplyThenOurs_SkipsTheStrayAndPasses()
    {
        using var server = Server();
        var answered = Task.Run(() => AnswerOne(server, (query, reply) =>
        {
            var stray = (byte[])reply.Clone();
            stray[0] ^= 0xff;
            return [.. stray, .. reply];
        }));
        Assert.Equal(HealthProbeResult.Pass, HealthProbe.Run(Spec(server), Timeout));
        await answered.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task DnsProbe_ServFail_FailsWithWrongAnswer()
    {
        using var server = Server();
        var answered = Task.Run(() => AnswerOne(server, (query, reply) =>
        {
            reply[3] = 0x82;
            return reply;
        }));
        var result = HealthProbe.Run(Spec(server), Timeout);
        Assert.Equal(HealthFailure.WrongAnswer, result.Failure);
        Assert.Contains("RCODE 2", result.Detail, StringComparison.Ordinal);
        await answered.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void DnsProbe_NothingBound_IsNothingListens()
    {
        int port;
        using (var closed = Server())
        {
            port = ((IPEndPoint)closed.LocalEndPoint!).Port;
        }
        var result = HealthProbe.Run(Spec(port), Timeout);
        Assert.Equal(HealthFailure.NothingListens, result.Failure);
    }

    [Fact]
    public void DnsProbe_ServerSilent_TimesOut()
    {
        using var server = Server();
        var result = HealthProbe.Run(Spec(server), TimeSpan.FromMilliseconds(200));
        Assert.Equal(HealthFailure.Timeout, result.Failure);
    }

    private static Socket Server()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return socket;
    }

    private static HealthProbeSpec Spec(Socket server) => Spec(((IPEndPoint)server.LocalEndPoint!).Port);

    private static HealthProbeSpec Spec(int port) =>
        new(HealthProbeKind.Dns, new IPEndPoint(IPAddress.Loopback, port), DnsName: "probe.lab") { DnsWireName = DnsProbeCodec.EncodeName("probe.lab", out _) };

    /// <summary>Reads one query and sends what <paramref name="shape"/> makes of the correct reply (several replies: concatenated, each 16 + question octets long).</summary>
    private static void AnswerOne(Socket server, Func<byte[], byte[], byte[]> shape)
    {
        var buffer = new byte[512];
        EndPoint from = new IPEndPoint(IPAddress.Any, 0);
        server.ReceiveTimeout = 5000;
        var n = server.ReceiveFrom(buffer, ref from);
        var query = buffer[..n];
        var reply = (byte[])query.Clone();
        reply[2] = 0x85;
        reply[3] = 0x80;
        reply[7] = 1;
        byte[] answer = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, 1];
        reply = [.. reply, .. answer];
        var shaped = shape(query, reply);
        for (var offset = 0; offset < shaped.Length; offset += reply.Length)
        {
            server.SendTo(shaped.AsSpan(offset, reply.Length), from);
        }
    }
}
