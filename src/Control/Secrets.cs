using System.Security.Cryptography;
using System.Text;

namespace Mesh.Control;

/// <summary>
/// Bearer secrets (pre-auth keys, admin API keys, session tokens) as "prefix_id_secret": the id finds the
/// record, and only SHA-256 of the whole string is stored. Secrets carry 256 bits, so a plain hash suffices.
/// </summary>
public static class Secrets
{
    public const string PreAuthKeyPrefix = "mpk";
    public const string ApiKeyPrefix = "mak";
    public const string SessionPrefix = "mst";

    public static (string Id, string Secret) Create(string prefix)
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        var secret = Base64Url(RandomNumberGenerator.GetBytes(32));
        return (id, $"{prefix}_{id}_{secret}");
    }

    public static byte[] Hash(string secret) => SHA256.HashData(Encoding.UTF8.GetBytes(secret));

    /// <summary>The id in a well-formed secret of this kind, or null.</summary>
    public static string? IdOf(string secret, string prefix)
    {
        var parts = secret.Split('_', 3);
        if (parts.Length != 3 || parts[0] != prefix || parts[1].Length != 12 || parts[2].Length < 40) return null;
        return parts[1];
    }

    public static bool Matches(string secret, byte[] storedHash) => CryptographicOperations.FixedTimeEquals(Hash(secret), storedHash);

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
