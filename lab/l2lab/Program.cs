namespace L2Balance.Lab.Cli;

internal static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("l2lab: skeleton");
        return 2;
    }
}
