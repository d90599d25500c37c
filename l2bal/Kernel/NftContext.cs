namespace L2Balance.Balancer.Kernel;

/// <summary>
/// One libnftables context, i.e. one netlink socket, for the owner's lifetime. Tables created
/// through it with <c>flags owner</c> can be changed only through it and vanish when it is
/// disposed or the process dies (checked in the lab: KernelFilterLabTests).
/// </summary>
internal sealed class NftContext : IDisposable
{
    /// <summary>How many lines of a failing command go into the exception message.</summary>
    private const int CommandLinesInError = 6;

    private readonly NamespaceWorker _worker;
    private readonly SafeNftContextHandle _handle;
    private bool _disposed;

    /// <summary>Opens a context in the current namespace, or in <paramref name="networkNamespacePath"/> if given.</summary>
    public NftContext(string? networkNamespacePath = null)
    {
        _worker = new NamespaceWorker("l2bal-nft", networkNamespacePath);
        try
        {
            _handle = _worker.Invoke(Open);
        }
        catch
        {
            _worker.Dispose();
            throw;
        }
    }

    /// <summary>Runs nft commands (text syntax, one transaction per buffer) and returns their output.</summary>
    /// <exception cref="KernelFilterException">libnftables refused; the message is its error buffer.</exception>
    public string Run(string commands) => Execute(commands, Interop.Nftables.NFT_CTX_DEFAULT);

    /// <summary>Runs nft commands (text syntax) with JSON output, for listings.</summary>
    public string RunJson(string commands) => Execute(commands, Interop.Nftables.NFT_CTX_OUTPUT_JSON);

    /// <summary>Runs <paramref name="action"/> on the context's thread, i.e. in its network namespace (for /proc/thread-self/net).</summary>
    public T InNamespace<T>(Func<T> action)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _worker.Invoke(action);
    }

    /// <summary>Frees the context on its thread: the netlink socket closes and owner tables go with it.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _worker.Invoke(() =>
        {
            _handle.Dispose();
            return 0;
        });
        _worker.Dispose();
    }

    /// <summary>The first lines of a command, for error messages.</summary>
    internal static string Excerpt(string commands)
    {
        var lines = commands.Split('\n');
        var head = string.Join('\n', lines.Take(CommandLinesInError));
        return lines.Length > CommandLinesInError ? $"{head}\n… ({lines.Length - CommandLinesInError} more lines)" : head;
    }

    private static SafeNftContextHandle Open()
    {
        var handle = Interop.Nftables.nft_ctx_new(Interop.Nftables.NFT_CTX_DEFAULT);
        if (handle.IsInvalid)
        {
            handle.Dispose();
            throw new KernelFilterException("nft_ctx_new: failed (no netlink socket?)");
        }

        if (Interop.Nftables.nft_ctx_buffer_output(handle) != 0 || Interop.Nftables.nft_ctx_buffer_error(handle) != 0)
        {
            handle.Dispose();
            throw new KernelFilterException("nft_ctx_buffer_output/nft_ctx_buffer_error: failed");
        }

        return handle;
    }

    private string Execute(string commands, uint outputFlags)
    {
        ArgumentNullException.ThrowIfNull(commands);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _worker.Invoke(() =>
        {
            Interop.Nftables.nft_ctx_output_set_flags(_handle, outputFlags);
            int rc = Interop.Nftables.nft_run_cmd_from_buffer(_handle, commands);
            string output = Interop.Nftables.nft_ctx_get_output_buffer(_handle);
            string error = Interop.Nftables.nft_ctx_get_error_buffer(_handle);
            if (rc != 0)
            {
                throw new KernelFilterException($"nft: {error.TrimEnd()}\nin command:\n{Excerpt(commands)}");
            }

            return output;
        });
    }
}
