using System.Text;
using L2Balance.Proxy.Workers;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Proxy.Tests.Workers;

/// <summary>The supervisor reads its workers' READY=1 strictly: only a well-formed message of a worker in range counts.</summary>
public class WorkerReadinessTests
{
    [Theory]
    [InlineData("READY=1\nWORKER=0", 0)]
    [InlineData("WORKER=3\nREADY=1", 3)]
    [InlineData("READY=1", null)]
    [InlineData("WORKER=1", null)]
    [InlineData("READY=1\nWORKER=4", null)]
    [InlineData("READY=1\nWORKER=-1", null)]
    [InlineData("READY=1\nWORKER=x", null)]
    [InlineData("READY=10\nWORKER=1", null)]
    public void ReadyWorker_Message_IsTheIndexOnlyWhenWellFormedAndInRange(string message, int? expected)
    {
        Assert.Equal(expected, WorkerReadiness.ReadyWorker(Encoding.UTF8.GetBytes(message), 4));
    }

    [Fact]
    public void ReadyWorker_OversizedMessage_IsIgnored()
    {
        Assert.Null(WorkerReadiness.ReadyWorker(Encoding.UTF8.GetBytes("READY=1\nWORKER=1\n" + new string('x', 300)), 4));
    }

    [Fact]
    public async Task AllReady_EveryWorkerReports_CompletesOnlyAfterTheLast()
    {
        using var readiness = new WorkerReadiness(2);
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
        var target = new System.Net.Sockets.UnixDomainSocketEndPoint("\0" + readiness.Address[1..]);
        socket.SendTo(Encoding.UTF8.GetBytes("READY=1\nWORKER=1"), target);
        socket.SendTo(Encoding.UTF8.GetBytes("READY=1\nWORKER=1"), target);
        await Task.Delay(200);
        Assert.False(readiness.AllReady.IsCompleted);
        socket.SendTo(Encoding.UTF8.GetBytes("READY=1\nWORKER=0"), target);
        await readiness.AllReady.WithTimeout();
    }
}
