namespace L2Balance.Balancer;

internal static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("l2bal: not implemented yet (issue 4)");
        return 2;
    }
}
