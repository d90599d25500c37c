namespace L2Balance.Proxy.Relay;

/// <summary>
/// A request to stop one run of a relay so its session can move (issue 19): the relay's directions
/// stop where they can resume without losing or repeating a byte. One use; a resumed relay gets a new one.
/// </summary>
internal sealed class RelayPause : IDisposable
{
    private readonly CancellationTokenSource _requested = new();

    public CancellationToken Token => _requested.Token;

    public bool IsRequested => _requested.IsCancellationRequested;

    public void Request() => _requested.Cancel();

    public void Dispose() => _requested.Dispose();
}
