using Microsoft.Win32.SafeHandles;

namespace L2Balance.Balancer;

/// <summary>
/// A libnftables <c>struct nft_ctx</c> (runtime SafeBrotliHandle style). Freeing it closes the
/// context's netlink socket, which deletes every table created with <c>flags owner</c> through it.
/// </summary>
internal sealed class SafeNftContextHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    /// <summary>Used by the interop marshaller for nft_ctx_new's return value.</summary>
    public SafeNftContextHandle()
        : base(ownsHandle: true)
    {
    }

    protected override bool ReleaseHandle()
    {
        Interop.Nftables.nft_ctx_free(handle);
        return true;
    }
}
