using Microsoft.Win32.SafeHandles;

namespace L2Balance.Balancer.Net;

/// <summary>
/// Whether the segment interface has carrier, read from sysfs at most once per
/// <c>period</c> (ip netns exec mounts the namespace's own /sys). Unknown counts as up.
/// </summary>
internal sealed class Carrier(string iface, TimeSpan period) : IDisposable
{
    private TimeSpan _checkedAt = TimeSpan.FromDays(-1);
    private bool _up = true;
    private SafeFileHandle? _file;

    /// <summary>The carrier at <paramref name="now"/>: read afresh when the last read is at least a period old.</summary>
    public bool Up(TimeSpan now)
    {
        if (now - _checkedAt < period)
        {
            return _up;
        }
        _checkedAt = now;
        Span<byte> value = stackalloc byte[8];
        try
        {
            // One open for the daemon's life, then one pread(2) at offset 0 per check (sysfs
            // renders the attribute afresh): no open, flock and close twenty times a second.
            _file ??= File.OpenHandle($"/sys/class/net/{iface}/carrier");
            var n = RandomAccess.Read(_file, value, 0);
            _up = n > 0 && value[0] != (byte)'0';
        }
        catch (IOException)
        {
            // Reading carrier of an interface that is administratively down fails with EINVAL: down.
            _up = !File.Exists($"/sys/class/net/{iface}/carrier");
        }
        catch (UnauthorizedAccessException)
        {
            _up = true; // unknown counts as up
        }
        return _up;
    }

    public void Dispose() => _file?.Dispose();
}
