using System.Net;
using System.Net.Sockets;
using System.Text;
using L2Balance.Balancer.Migration;
using Xunit;

namespace L2Balance.L2Bal.Tests.Migration;

/// <summary>The client against a double of l2proxy's migration socket: a listener on a unique abstract name that answers by script.</summary>
public sealed class MigrationProxyClientTests : IDisposable
{
    private readonly string _name = $"@l2bal-test-migrate-{Environment.ProcessId}-{Guid.NewGuid():N}";
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly List<string> _requests = [];

    public MigrationProxyClientTests()
    {
        _listener.Bind(new UnixDomainSocketEndPoint("\0" + _name[1..]));
        _listener.Listen(8);
    }

    /// <summary>Serves one connection: reads the request line, sends <paramref name="answer"/>, closes.</summary>
    private Task Serve(string answer) => Task.Run(() =>
    {
        using var client = _listener.Accept();
        var buffer = new byte[4096];
        var text = new StringBuilder();
        while (!text.ToString().Contains('\n', StringComparison.Ordinal))
        {
            int n = client.Receive(buffer);
            if (n == 0)
            {
                break;
            }
            text.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }
        lock (_requests)
        {
            _requests.Add(text.ToString().TrimEnd('\n'));
        }
        client.Send(Encoding.UTF8.GetBytes(answer));
    });

    private MigrationProxyClient Client() => new(_name, TimeSpan.FromSeconds(5));

    [Fact]
    public async Task Key_SendsEpochAndLowercaseHex_AndAcceptsOk()
    {
        var served = Serve("ok\n");
        Client().Key(7, [0xab, 0x01]);
        await served;

        Assert.Equal(["key 7 ab01"], _requests);
    }

    [Fact]
    public async Task Accept_ErrorLine_ThrowsWithTheProxysReason()
    {
        var served = Serve("error: no-key\n");
        var e = Assert.Throws<MigrationProxyException>(() => Client().Accept(IPEndPoint.Parse("198.18.0.2:1081")));
        await served;

        Assert.Equal(["accept 198.18.0.2:1081"], _requests);
        Assert.Contains("no-key", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task List_SessionsUpToEnd_AreParsed()
    {
        var served = Serve("session a connect 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 10 movable\n"
            + "session b udp 198.18.1.6:40002 198.18.0.10:1080 198.18.0.10:33002 198.18.1.6:5353 0 stays=workers\nend\n");
        var sessions = Client().List();
        await served;

        Assert.Equal(["a", "b"], sessions.Select(s => s.Id));
        Assert.Equal("workers", sessions[1].Stays);
    }

    [Theory]
    [InlineData("session a connect 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 10 movable\n")]
    [InlineData("garbage\nend\n")]
    [InlineData("")]
    public async Task List_WithoutEndOrWithAForeignLine_Throws(string answer)
    {
        var served = Serve(answer);
        Assert.Throws<MigrationProxyException>(() => Client().List());
        await served;
    }

    [Fact]
    public async Task Move_OutcomesUpToEnd_AreReturned()
    {
        var served = Serve("moved a 12\nstayed b restore-failed\nend\n");
        var outcomes = Client().Move(IPEndPoint.Parse("198.18.0.3:1081"), ["a", "b"]);
        await served;

        Assert.Equal(["move 198.18.0.3:1081 a b"], _requests);
        Assert.Equal([new MoveOutcome("a", true, 12, null), new MoveOutcome("b", false, 0, "restore-failed")], outcomes);
    }

    [Fact]
    public async Task Prepare_PreparedAndStayedUpToEnd_AreReturned()
    {
        var served = Serve("prepared a\nstayed b not-established\nend\n");
        var outcomes = Client().Prepare(IPEndPoint.Parse("198.18.0.3:1081"), ["a", "b"]);
        await served;

        Assert.Equal(["prepare 198.18.0.3:1081 a b"], _requests);
        Assert.Equal([new PrepareOutcome("a", null), new PrepareOutcome("b", "not-established")], outcomes);
    }

    [Theory]
    [InlineData("moved a 3\nend\n")]
    [InlineData("error: unknown request; one of: key EPOCH HEX, accept ADDR:PORT, list, move PEER:PORT ID...\n")]
    public async Task Prepare_AnswerOfAnOlderProxyOrAMoveLine_Throws(string answer)
    {
        var served = Serve(answer);
        Assert.Throws<MigrationProxyException>(() => Client().Prepare(IPEndPoint.Parse("198.18.0.3:1081"), ["a"]));
        await served;
    }

    [Fact]
    public void AnyRequest_NobodyListening_ThrowsNotSocketException()
    {
        var client = new MigrationProxyClient($"@l2bal-test-nobody-{Guid.NewGuid():N}", TimeSpan.FromSeconds(1));

        Assert.Throws<MigrationProxyException>(() => client.List());
    }

    public void Dispose() => _listener.Dispose();
}
