using System.Net.Sockets;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Protocol;

public class SocksErrorsTests
{
    public static TheoryData<SocketError, ReplyCode> Mapped => new()
    {
        { SocketError.Success, ReplyCode.Succeeded },
        { SocketError.ConnectionRefused, ReplyCode.ConnectionRefused },
        { SocketError.NetworkUnreachable, ReplyCode.NetworkUnreachable },
        { SocketError.NetworkDown, ReplyCode.NetworkUnreachable },
        { SocketError.HostUnreachable, ReplyCode.HostUnreachable },
        { SocketError.HostDown, ReplyCode.HostUnreachable },
        { SocketError.HostNotFound, ReplyCode.HostUnreachable },
        { SocketError.NoData, ReplyCode.HostUnreachable },
        { SocketError.TryAgain, ReplyCode.HostUnreachable },
        { SocketError.TimedOut, ReplyCode.TtlExpired },
        { SocketError.AccessDenied, ReplyCode.NotAllowedByRuleset },
        { SocketError.AddressFamilyNotSupported, ReplyCode.AddressTypeNotSupported },
    };

    [Theory]
    [MemberData(nameof(Mapped))]
    public void FromSocketError_TabledError_MapsToItsReplyCode(SocketError error, ReplyCode expected) =>
        Assert.Equal(expected, SocksErrors.FromSocketError(error));

    [Fact]
    public void FromSocketError_UntabledError_IsGeneralFailure()
    {
        var mapped = Mapped.Select(row => (SocketError)row[0]).ToHashSet();
        foreach (SocketError error in Enum.GetValues<SocketError>().Where(e => !mapped.Contains(e)))
        {
            Assert.Equal(ReplyCode.GeneralFailure, SocksErrors.FromSocketError(error));
        }

        Assert.Equal(ReplyCode.GeneralFailure, SocksErrors.FromSocketError(SocketError.ConnectionReset));
        Assert.Equal(ReplyCode.GeneralFailure, SocksErrors.FromSocketError((SocketError)123456));
    }

    [Fact]
    public void ToSocks4_AnyReplyCode_IsGrantedOnlyOnSuccess()
    {
        Assert.Equal(Socks4ReplyCode.Granted, SocksErrors.ToSocks4(ReplyCode.Succeeded));
        foreach (ReplyCode reply in Enum.GetValues<ReplyCode>().Where(r => r != ReplyCode.Succeeded))
        {
            Assert.Equal(Socks4ReplyCode.RejectedOrFailed, SocksErrors.ToSocks4(reply));
        }
    }

    [Fact]
    public void FromRejection_CommandOrAddressType_MapToDistinctReplyCodes()
    {
        Assert.Equal(ReplyCode.CommandNotSupported, SocksErrors.FromRejection(SocksRejection.BadCommand));
        Assert.Equal(ReplyCode.AddressTypeNotSupported, SocksErrors.FromRejection(SocksRejection.BadAddressType));
        foreach (SocksRejection reason in Enum.GetValues<SocksRejection>().Where(r => r is not (SocksRejection.BadCommand or SocksRejection.BadAddressType)))
        {
            Assert.Equal(ReplyCode.GeneralFailure, SocksErrors.FromRejection(reason));
        }
    }

    [Fact]
    public void SocksRejection_EveryValue_IsStableAndUnique()
    {
        // Metrics and logs record these numbers (docs/conventions.md §6): a renumbering must fail a test.
        SocksRejection[] values = Enum.GetValues<SocksRejection>();
        Assert.Equal(values.Length, values.Select(v => (int)v).Distinct().Count());
        Assert.Equal(0, (int)SocksRejection.None);
        Assert.Equal(3, (int)SocksRejection.BadCommand);
        Assert.Equal(5, (int)SocksRejection.BadAddressType);
        Assert.Equal(13, (int)SocksRejection.BadStatus);
    }
}
