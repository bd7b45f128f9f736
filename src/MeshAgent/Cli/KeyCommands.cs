using System.CommandLine;
using Mesh.WireGuard.Keys;

namespace Mesh.Agent.Cli;

/// <summary>genkey, pubkey and genpsk, byte for byte as `wg` prints them.</summary>
internal static class KeyCommands
{
    public static IEnumerable<Command> Build()
    {
        var genkey = new Command("genkey", "Print a new private key (base64).");
        genkey.SetAction(_ =>
        {
            using var key = PrivateKey.Generate();
            Console.Out.Write(key.ToBase64() + "\n");
            return 0;
        });

        var pubkey = new Command("pubkey", "Read a private key on standard input and print its public key.");
        pubkey.SetAction(_ =>
        {
            var input = Console.In.ReadToEnd();
            try
            {
                using var key = PrivateKey.Parse(input);
                Console.Out.Write(key.PublicKey.ToBase64() + "\n");
                return 0;
            }
            catch (FormatException)
            {
                Console.Error.WriteLine("pubkey: Key is not the correct length or format");
                return 1;
            }
        });

        var genpsk = new Command("genpsk", "Print a new preshared key (base64).");
        genpsk.SetAction(_ =>
        {
            using var key = PresharedKey.Generate();
            Console.Out.Write(key.ToBase64() + "\n");
            return 0;
        });
        return [genkey, pubkey, genpsk];
    }
}
