using System.Buffers.Binary;
using System.Net.Sockets;
using L2Balance.Proxy.Workers;
using Xunit;

namespace L2Balance.Proxy.Tests.Workers;

/// <summary>The supervisor ↔ worker channel checks every length before it reads (docs/conventions.md §16).</summary>
public class WorkerChannelTests
{
    [Fact]
    public void TryParseHeader_EncodedMessage_GivesItsNumberAndTextLength()
    {
        var message = WorkerChannel.Encode(7, "list");
        Assert.True(WorkerChannel.TryParseHeader(message, out var number, out var length));
        Assert.Equal(7u, number);
        Assert.Equal(4, length);
        Assert.Equal("list", WorkerChannel.DecodeText(message.AsSpan(WorkerChannel.HeaderLength)));
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(3u)]
    [InlineData((uint)WorkerChannel.MaxMessage + 5)]
    [InlineData(uint.MaxValue)]
    public void TryParseHeader_LengthOutOfBounds_IsRefused(uint rest)
    {
        var header = new byte[WorkerChannel.HeaderLength];
        BinaryPrimitives.WriteUInt32BigEndian(header, rest);
        Assert.False(WorkerChannel.TryParseHeader(header, out _, out _));
    }

    [Fact]
    public void TryParseHeader_ShortHeader_IsRefused()
    {
        Assert.False(WorkerChannel.TryParseHeader(new byte[WorkerChannel.HeaderLength - 1], out _, out _));
    }

    [Fact]
    public void DecodeText_NotUtf8_IsNull()
    {
        Assert.Null(WorkerChannel.DecodeText([0x6c, 0xff, 0xfe]));
    }

    [Fact]
    public void Encode_TextAboveTheLimit_Throws()
    {
        Assert.Throws<ArgumentException>(() => WorkerChannel.Encode(1, new string('x', WorkerChannel.MaxMessage + 1)));
    }

    [Fact]
    public async Task ReceiveAsync_MessagesOverAPair_ArriveWholeAndInOrder()
    {
        var (supervisor, worker) = WorkerChannel.CreatePair(inheritable: false);
        using var a = new WorkerChannel(supervisor);
        using var b = new WorkerChannel(new Socket(worker));
        var large = string.Concat(Enumerable.Repeat("session 1 connect é\n", 20_000));
        var sent = Task.Run(async () =>
        {
            await a.SendAsync(1, "key 1 00", CancellationToken.None);
            await a.SendAsync(2, large, CancellationToken.None);
        });
        Assert.Equal((1u, "key 1 00"), await b.ReceiveAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal((2u, large), await b.ReceiveAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10)));
        await sent;
        a.Dispose();
        Assert.Null(await b.ReceiveAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ReceiveAsync_OversizedAnnouncement_ThrowsBeforeReadingTheBody()
    {
        var (supervisor, worker) = WorkerChannel.CreatePair(inheritable: false);
        using var raw = supervisor;
        using var b = new WorkerChannel(new Socket(worker));
        var header = new byte[WorkerChannel.HeaderLength];
        BinaryPrimitives.WriteUInt32BigEndian(header, uint.MaxValue);
        await raw.SendAsync(header, SocketFlags.None);
        await Assert.ThrowsAsync<InvalidDataException>(() => b.ReceiveAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ReceiveAsync_ClosedMidMessage_Throws()
    {
        var (supervisor, worker) = WorkerChannel.CreatePair(inheritable: false);
        using var b = new WorkerChannel(new Socket(worker));
        using (supervisor)
        {
            await supervisor.SendAsync(WorkerChannel.Encode(3, "list")[..10], SocketFlags.None);
        }
        await Assert.ThrowsAsync<InvalidDataException>(() => b.ReceiveAsync(CancellationToken.None));
    }
}
