namespace Mesh.Tests.Shared;

/// <summary>Policies the tests set, as an admin would write them.</summary>
public static class Policies
{
    /// <summary>Laptops may open SSH on servers; nothing else is allowed. Its test passes.</summary>
    public const string LaptopsToServersOnSsh = """
        // Laptops may open SSH on servers; nothing else is allowed.
        {
          // tags are owned by the default user, who holds every key the tests make
          "tagOwners": { "tag:laptop": ["default@"], "tag:server": ["default@"] },
          "acls": [
            { "action": "accept", "src": ["tag:laptop"], "dst": ["tag:server:22"] },
          ],
          "tests": [
            { "src": "tag:laptop", "accept": ["tag:server:22"], "deny": ["tag:server:80"] },
          ],
        }
        """;
}
