namespace L2Balance.Proxy;

internal static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("l2proxy: skeleton");
        return 2;
    }
}
