using System.Runtime.InteropServices;
using Caps = L2Balance.Balancer.Interop.Capabilities;

namespace L2Balance.Balancer.Daemon;

/// <summary>
/// Keeps l2bal's capabilities (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_NICE, given as ambient by its
/// unit) out of the programs it runs: an <c>exec:</c> health command must not inherit the power to
/// rewrite the node's firewall (docs/design.md#systemd). Capabilities are per thread and a child
/// takes them from the thread that forks it, so the probe thread, which starts every command,
/// clears its ambient and inheritable sets; its own effective set stays (it needs none).
/// </summary>
internal static class ThreadCapabilities
{
    /// <summary>Clears the calling thread's ambient and inheritable sets; returns 0 or the errno.</summary>
    public static unsafe int KeepFromChildren()
    {
        if (Caps.prctl(Caps.PR_CAP_AMBIENT, Caps.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        {
            return Marshal.GetLastPInvokeError();
        }
        var header = new Caps.cap_user_header { version = Caps._LINUX_CAPABILITY_VERSION_3 };
        var data = stackalloc Caps.cap_user_data[2];
        if (Caps.capget(&header, data) != 0)
        {
            return Marshal.GetLastPInvokeError();
        }
        data[0].inheritable = 0;
        data[1].inheritable = 0;
        return Caps.capset(&header, data) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }
}
