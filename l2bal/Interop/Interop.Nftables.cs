using System.Runtime.InteropServices;

namespace L2Balance.Balancer;

internal static partial class Interop
{
    /// <summary>libnftables (nftables/libnftables.h, nftables 1.0.6).</summary>
    internal static partial class Nftables
    {
        /// <summary>NFT_CTX_DEFAULT: the only nft_ctx_new flag.</summary>
        internal const uint NFT_CTX_DEFAULT = 0;

        /// <summary>NFT_CTX_OUTPUT_JSON (1 &lt;&lt; 4): JSON output, and in 1.0.6 also JSON input.</summary>
        internal const uint NFT_CTX_OUTPUT_JSON = 1u << 4;

        /// <summary>struct nft_ctx *nft_ctx_new(uint32_t flags). Opens the context's netlink socket.</summary>
        [LibraryImport(Libraries.Nftables, SetLastError = true)]
        internal static partial SafeNftContextHandle nft_ctx_new(uint flags);

        /// <summary>void nft_ctx_free(struct nft_ctx *ctx). Closes the netlink socket.</summary>
        [LibraryImport(Libraries.Nftables, SetLastError = true)]
        internal static partial void nft_ctx_free(nint ctx);

        /// <summary>int nft_ctx_buffer_output(struct nft_ctx *ctx): collect output in memory instead of stdout.</summary>
        [LibraryImport(Libraries.Nftables, SetLastError = true)]
        internal static partial int nft_ctx_buffer_output(SafeNftContextHandle ctx);

        /// <summary>int nft_ctx_buffer_error(struct nft_ctx *ctx): collect errors in memory instead of stderr.</summary>
        [LibraryImport(Libraries.Nftables, SetLastError = true)]
        internal static partial int nft_ctx_buffer_error(SafeNftContextHandle ctx);

        /// <summary>void nft_ctx_output_set_flags(struct nft_ctx *ctx, unsigned int flags).</summary>
        [LibraryImport(Libraries.Nftables, SetLastError = true)]
        internal static partial void nft_ctx_output_set_flags(SafeNftContextHandle ctx, uint flags);

        /// <summary>int nft_run_cmd_from_buffer(struct nft_ctx *nft, const char *buf): 0 on success, -1 on error.</summary>
        [LibraryImport(Libraries.Nftables, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int nft_run_cmd_from_buffer(SafeNftContextHandle nft, string buf);

        /// <summary>const char *nft_ctx_get_output_buffer(struct nft_ctx *ctx): owned by the context, reset by the call.</summary>
        [LibraryImport(Libraries.Nftables, EntryPoint = "nft_ctx_get_output_buffer", SetLastError = true)]
        private static partial nint nft_ctx_get_output_buffer_ptr(SafeNftContextHandle ctx);

        /// <summary>const char *nft_ctx_get_error_buffer(struct nft_ctx *ctx): owned by the context, reset by the call.</summary>
        [LibraryImport(Libraries.Nftables, EntryPoint = "nft_ctx_get_error_buffer", SetLastError = true)]
        private static partial nint nft_ctx_get_error_buffer_ptr(SafeNftContextHandle ctx);

        /// <summary>nft_ctx_get_output_buffer, copied: the pointer belongs to the context and must not be freed.</summary>
        internal static string nft_ctx_get_output_buffer(SafeNftContextHandle ctx) =>
            Marshal.PtrToStringUTF8(nft_ctx_get_output_buffer_ptr(ctx)) ?? string.Empty;

        /// <summary>nft_ctx_get_error_buffer, copied: the pointer belongs to the context and must not be freed.</summary>
        internal static string nft_ctx_get_error_buffer(SafeNftContextHandle ctx) =>
            Marshal.PtrToStringUTF8(nft_ctx_get_error_buffer_ptr(ctx)) ?? string.Empty;
    }
}
