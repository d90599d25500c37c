using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace L2Balance.Lab;

/// <summary>
/// Runs a short function on a fresh, dedicated thread that has entered a network namespace with
/// setns(2). A socket created there stays in that namespace for its whole life and can then be
/// used from any thread. Thread-pool threads never change namespace; the dedicated thread moves
/// back to its original namespace before it ends anyway.
/// </summary>
internal static class NamespaceThread
{
    public static T Run<T>(string namespacePath, Func<T> action)
    {
        T? result = default;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var original = Open($"/proc/self/task/{Interop.Sys.gettid()}/ns/net");
                using var target = Open(namespacePath);
                SetNs(target, namespacePath);
                try
                {
                    result = action();
                }
                finally
                {
                    SetNs(original, "original namespace");
                }
            }
            catch (Exception ex)
            {
                failure = ExceptionDispatchInfo.Capture(ex);
            }
        })
        {
            IsBackground = true,
            Name = "lab-setns",
        };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result!;
    }

    private static SafeFileHandle Open(string path) =>
        File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);

    private static void SetNs(SafeFileHandle handle, string what)
    {
        if (Interop.Sys.setns(handle, Interop.Sys.CLONE_NEWNET) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new LabCommandException($"setns({what}, CLONE_NEWNET): {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }
    }
}
