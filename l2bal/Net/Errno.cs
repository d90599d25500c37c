using System.Globalization;

namespace L2Balance.Balancer.Net;

/// <summary>
/// Names of Linux errno values (asm-generic/errno-base.h, errno.h), so that failures read
/// "setsockopt(PACKET_ADD_MEMBERSHIP): EPERM" (docs/conventions.md §10) rather than a localized sentence.
/// </summary>
internal static class Errno
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int EADDRNOTAVAIL = 99;

    private static readonly Dictionary<int, string> Names = new()
    {
        [1] = "EPERM", [2] = "ENOENT", [3] = "ESRCH", [4] = "EINTR", [5] = "EIO", [6] = "ENXIO",
        [9] = "EBADF", [11] = "EAGAIN", [12] = "ENOMEM", [13] = "EACCES", [14] = "EFAULT",
        [16] = "EBUSY", [17] = "EEXIST", [19] = "ENODEV", [22] = "EINVAL", [23] = "ENFILE",
        [24] = "EMFILE", [25] = "ENOTTY", [28] = "ENOSPC", [34] = "ERANGE", [71] = "EPROTO",
        [88] = "ENOTSOCK", [90] = "EMSGSIZE", [92] = "ENOPROTOOPT", [93] = "EPROTONOSUPPORT",
        [95] = "EOPNOTSUPP", [97] = "EAFNOSUPPORT", [98] = "EADDRINUSE", [99] = "EADDRNOTAVAIL",
        [100] = "ENETDOWN", [101] = "ENETUNREACH", [105] = "ENOBUFS", [110] = "ETIMEDOUT",
    };

    /// <summary>"EPERM" for 1; "errno 4242" for a value without a name here.</summary>
    public static string Name(int errno) =>
        Names.TryGetValue(errno, out var name) ? name : string.Create(CultureInfo.InvariantCulture, $"errno {errno}");
}
