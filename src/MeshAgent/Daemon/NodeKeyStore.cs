using Mesh.WireGuard.Keys;

namespace Mesh.Agent.Daemon;

/// <summary>The node's private key in the state directory (base64, mode 0600), created on first start.</summary>
public static class NodeKeyStore
{
    public static PrivateKey LoadOrCreate(string stateDir)
    {
        var path = Path.Combine(stateDir, AgentOptions.KeyFile);
        if (File.Exists(path))
        {
            var text = File.ReadAllText(path).Trim();
            try
            {
                return PrivateKey.Parse(text);
            }
            catch (FormatException ex)
            {
                throw new InvalidDataException($"{path}: not a base64 WireGuard private key ({ex.Message}); remove it to make a new node.", ex);
            }
        }
        var key = PrivateKey.Generate();
        using (var file = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        using (var writer = new StreamWriter(file))
        {
            writer.WriteLine(key.ToBase64());
        }
        return key;
    }
}
