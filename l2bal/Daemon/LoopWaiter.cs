using System.Net.Sockets;
using System.Runtime.InteropServices;
using L2Balance.Balancer.Net;
using Microsoft.Win32.SafeHandles;
using static L2Balance.Balancer.Interop.Poll;

namespace L2Balance.Balancer.Daemon;

/// <summary>
/// How the daemon's loop sleeps: in one ppoll(2) on the advert socket and an eventfd, until a
/// frame arrives, another thread calls <see cref="Wake"/> (a control request, a scrape, a health
/// change, stop), or the loop's next deadline passes. An idle node thus wakes only when there is
/// something to do: its own advert, a peer's, a peer's dead time running out.
/// </summary>
internal sealed class LoopWaiter : IDisposable
{
    private readonly SafeFileHandle _event;
    private readonly SafeSocketHandle _socket;
    private TimeSpan _socketQuiet;

    public LoopWaiter(SafeSocketHandle socket)
    {
        _socket = socket;
        _event = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (_event.IsInvalid)
        {
            throw new IOException($"eventfd: {Errno.Name(Marshal.GetLastPInvokeError())}");
        }
    }

    /// <summary>
    /// Wakes the loop from any thread (an eventfd write; wake-ups before the next wait are not
    /// lost). After <see cref="Dispose"/> it does nothing: a probe or a request finishing while
    /// the daemon stops has no loop left to wake.
    /// </summary>
    public unsafe void Wake()
    {
        ulong one = 1;
        try
        {
            _ = write(_event, &one, sizeof(ulong));
        }
        catch (ObjectDisposedException)
        {
            // Stopped.
        }
    }

    /// <summary>
    /// Makes the next <see cref="Wait"/> ignore the socket for up to <paramref name="quiet"/> (it
    /// still wakes for <see cref="Wake"/> and its timeout): under a flood of frames to reject, the
    /// loop then takes them in batches instead of waking once per frame (docs/design.md#advert-budget).
    /// </summary>
    public void QuietSocket(TimeSpan quiet) => _socketQuiet = quiet;

    /// <summary>
    /// Sleeps at most <paramref name="timeout"/> (zero or less: does not sleep) until a frame is
    /// queued on the socket or <see cref="Wake"/> is called. Clears pending wake-ups.
    /// </summary>
    public unsafe void Wait(TimeSpan timeout)
    {
        var added = false;
        var addedEvent = false;
        try
        {
            _socket.DangerousAddRef(ref added);
            _event.DangerousAddRef(ref addedEvent);
            var fds = stackalloc PollFd[2];
            fds[0] = new PollFd { Fd = (int)_socket.DangerousGetHandle(), Events = POLLIN };
            fds[1] = new PollFd { Fd = (int)_event.DangerousGetHandle(), Events = POLLIN };
            // While the socket is quiet, only the eventfd is watched, and not beyond the quiet time.
            var quiet = _socketQuiet > TimeSpan.Zero;
            if (quiet && _socketQuiet < timeout)
            {
                timeout = _socketQuiet;
            }
            _socketQuiet = TimeSpan.Zero;
            var ticks = Math.Max(0, timeout.Ticks);
            var spec = new TimeSpec { Seconds = ticks / TimeSpan.TicksPerSecond, Nanoseconds = ticks % TimeSpan.TicksPerSecond * 100 };
            var n = quiet ? ppoll(fds + 1, 1, &spec, 0) : ppoll(fds, 2, &spec, 0);
            if (n > 0 && fds[1].Revents != 0)
            {
                ulong value;
                _ = read(_event, &value, sizeof(ulong));
            }
        }
        finally
        {
            if (addedEvent)
            {
                _event.DangerousRelease();
            }
            if (added)
            {
                _socket.DangerousRelease();
            }
        }
    }

    public void Dispose() => _event.Dispose();
}
