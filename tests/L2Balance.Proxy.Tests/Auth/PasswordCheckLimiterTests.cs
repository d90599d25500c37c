using System.Net;
using L2Balance.Proxy.Auth;
using L2Balance.Proxy.Diagnostics;
using Xunit;

namespace L2Balance.Proxy.Tests.Auth;

public sealed class PasswordCheckLimiterTests
{
    private static readonly IPAddress Flooder = IPAddress.Parse("198.18.1.2");
    private static readonly IPAddress Other = IPAddress.Parse("fdc6:1200:1::2");

    [Fact]
    public void TryEnter_PerAddressCapReached_RefusesThatAddressButNotAnother()
    {
        var limiter = new PasswordCheckLimiter(perAddress: 2, total: 10);

        Assert.Null(limiter.TryEnter(Flooder));
        Assert.Null(limiter.TryEnter(Flooder));
        Assert.Equal(WorkLimit.PerClient, limiter.TryEnter(Flooder));
        Assert.Null(limiter.TryEnter(Other));
        Assert.Equal(3, limiter.InProgress);
    }

    [Fact]
    public void TryEnter_TotalCapReached_RefusesEveryAddress()
    {
        var limiter = new PasswordCheckLimiter(perAddress: 4, total: 3);
        for (var i = 0; i < 3; i++)
        {
            Assert.Null(limiter.TryEnter(IPAddress.Parse($"198.18.1.{10 + i}")));
        }

        Assert.Equal(WorkLimit.Total, limiter.TryEnter(Other));
        Assert.Equal(3, limiter.InProgress);
    }

    [Fact]
    public void Exit_AfterChecksAndRefusals_GivesEveryPlaceBack()
    {
        var limiter = new PasswordCheckLimiter(perAddress: 1, total: 2);
        Assert.Null(limiter.TryEnter(Flooder));
        Assert.Equal(WorkLimit.PerClient, limiter.TryEnter(Flooder));
        limiter.Exit(Flooder);

        Assert.Equal(0, limiter.InProgress);
        Assert.Null(limiter.TryEnter(Flooder));
    }

    [Fact]
    public void Defaults_WithoutArguments_ArePerAddress4AndTotal64()
    {
        var limiter = new PasswordCheckLimiter();

        Assert.Equal(4, limiter.PerAddress);
        Assert.Equal(64, limiter.Total);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PasswordCheckLimiter(perAddress: 0));
    }
}
