using Xunit;

namespace L2Balance.Common.Tests;

/// <summary>A fact that needs root (setns(2) needs CAP_SYS_ADMIN): skipped, with that reason, otherwise.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (Environment.UserName != "root")
        {
            Skip = "needs root: setns(2) requires CAP_SYS_ADMIN";
        }
    }
}
