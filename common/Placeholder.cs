namespace L2Balance.Common;

/// <summary>The shared library's assembly marker, until its first member lands.</summary>
internal static class CommonAssembly
{
}
