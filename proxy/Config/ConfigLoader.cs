namespace L2Balance.Proxy.Config;

/// <summary>Reads a sockd.conf file from disk and parses it; the only I/O of the configuration front ends.</summary>
public static class ConfigLoader
{
    /// <summary>Files larger than this are refused: a sockd.conf is a few kilobytes.</summary>
    public const long MaxFileBytes = 1 << 20;

    public static ConfigResult Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            var info = new FileInfo(path);
            if (info.Exists && info.Length > MaxFileBytes)
            {
                return Failed(path, $"configuration file is larger than {MaxFileBytes} bytes");
            }

            text = File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            return Failed(path, "configuration file not found");
        }
        catch (DirectoryNotFoundException)
        {
            return Failed(path, "configuration file not found (no such directory)");
        }
        catch (UnauthorizedAccessException)
        {
            return Failed(path, "cannot read configuration file: permission denied");
        }
        catch (IOException e)
        {
            return Failed(path, $"cannot read configuration file: {e.Message}");
        }

        return SockdConfParser.Parse(text, path);
    }

    private static ConfigResult Failed(string path, string message) =>
        new(null, [new ConfigError(path, 0, 0, message)], []);
}
