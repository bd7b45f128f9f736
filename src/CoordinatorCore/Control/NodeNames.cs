using System.Text;

namespace Mesh.Coordinator.Control;

/// <summary>Node names are DNS labels: lowercase letters, digits and hyphens, unique in the mesh.</summary>
public static class NodeNames
{
    public static string Sanitize(string hostname)
    {
        var label = new StringBuilder();
        foreach (var c in hostname.Split('.')[0].ToLowerInvariant())
        {
            if (char.IsAsciiLetterOrDigit(c)) label.Append(c);
            else if (label.Length > 0 && label[^1] != '-') label.Append('-');
        }
        var name = label.ToString().Trim('-');
        if (name.Length > 50) name = name[..50].TrimEnd('-');
        return name.Length == 0 ? "node" : name;
    }

    public static bool IsValid(string name) =>
        name.Length is > 0 and <= 63 && name[0] != '-' && name[^1] != '-' && name.All(c => c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-');

    /// <summary>The name itself, or name-2, name-3... whichever is free.</summary>
    public static string Unique(string name, Func<string, bool> taken)
    {
        if (!taken(name)) return name;
        for (var i = 2; ; i++)
        {
            var candidate = $"{name}-{i}";
            if (!taken(candidate)) return candidate;
        }
    }
}
