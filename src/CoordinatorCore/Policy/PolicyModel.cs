using System.Net;

namespace Mesh.Coordinator.Policy;

/// <summary>
/// A node as the policy sees it: the user that owns it (none when its tags own it, as in Tailscale, or when an admin
/// approved it by code), its tags and its mesh addresses.
/// </summary>
public sealed record PolicyNode(long Id, long? UserId, string? User, IReadOnlyList<string> Tags, IPAddress? Ipv4, IPAddress? Ipv6)
{
    public bool Tagged => Tags.Count > 0;

    /// <summary>Owned by a user, not by tags: what users, groups, autogroup:member and autogroup:self select.</summary>
    public bool OwnedByUser => !Tagged && User is not null;
}

public enum SelectorKind
{
    All,
    User,
    Group,
    Tag,
    Prefix,
    Member,
    Tagged,
    Self,
    Internet,
    DangerAll,
}

/// <summary>One entry of a rule's src or dst (without its ports), as written and as resolved: a group to its users, a host to its prefix.</summary>
public sealed record Selector(SelectorKind Kind, string Text, string? Name = null, IReadOnlySet<string>? Users = null, IPNetwork? Prefix = null)
{
    /// <summary>Whether the node is selected; <see cref="SelectorKind.Self"/> depends on the other end and is decided by the rule.</summary>
    public bool Matches(PolicyNode node) => Kind switch
    {
        SelectorKind.All or SelectorKind.DangerAll => true,
        SelectorKind.User => node.OwnedByUser && node.User == Name,
        SelectorKind.Group => node.OwnedByUser && Users!.Contains(node.User!),
        SelectorKind.Tag => Contains(node.Tags, Name!),
        SelectorKind.Prefix => (node.Ipv4 is { } v4 && Prefix!.Value.Contains(v4)) || (node.Ipv6 is { } v6 && Prefix!.Value.Contains(v6)),
        SelectorKind.Member => node.OwnedByUser,
        SelectorKind.Tagged => node.Tagged,
        _ => false,
    };

    private static bool Contains(IReadOnlyList<string> tags, string tag)
    {
        foreach (var t in tags)
        {
            if (t == tag) return true;
        }
        return false;
    }

    public override string ToString() => Text;
}

public readonly record struct PortRange(ushort First, ushort Last)
{
    public static readonly PortRange Any = new(0, 65535);

    public bool Contains(int port) => port >= First && port <= Last;

    public override string ToString() => First == Last ? First.ToString() : First == 0 && Last == 65535 ? "*" : $"{First}-{Last}";
}

/// <summary>A dst entry: whom, and on which ports.</summary>
public sealed record Destination(Selector Target, IReadOnlyList<PortRange> Ports);

/// <summary>An accept rule. No protocols means Tailscale's default: TCP, UDP, ICMP and ICMPv6.</summary>
public sealed record AclRule(int Index, TextPosition At, IReadOnlyList<Selector> Sources, IReadOnlyList<Destination> Destinations, IReadOnlyList<byte> Protocols)
{
    /// <summary>
    /// The rule's token in grants and filters: 63 bits of SHA-256 over what it says (its sources, destinations with
    /// their ports, and protocols), the same wherever it sits in the file and whichever version it is in.
    /// </summary>
    public ulong Token { get; } = TokenOf(Sources, Destinations, Protocols);

    private static ulong TokenOf(IReadOnlyList<Selector> sources, IReadOnlyList<Destination> destinations, IReadOnlyList<byte> protocols)
    {
        var text = new System.Text.StringBuilder();
        foreach (var s in sources) text.Append(s.Text).Append('\u0001');
        text.Append('\u0002');
        foreach (var d in destinations) text.Append(d.Target.Text).Append(':').AppendJoin(',', d.Ports).Append('\u0001');
        text.Append('\u0002').AppendJoin(',', protocols);
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text.ToString()));
        return Math.Max(1, System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(hash) >> 1);
    }

    public bool HasSelf
    {
        get
        {
            foreach (var d in Destinations)
            {
                if (d.Target.Kind == SelectorKind.Self) return true;
            }
            return false;
        }
    }

    public bool AllowsProtocol(int protocol) => Protocols.Count == 0 ? IpProtocols.IsDefault(protocol) : Contains(Protocols, protocol);

    /// <summary>
    /// Whether a node of this node's user may be among the sources, so that the rule's autogroup:self reaches this
    /// node: a source other than an address matches a node owned by a user by its user alone.
    /// </summary>
    public bool SourceMayBeOfUser(PolicyNode node)
    {
        foreach (var s in Sources)
        {
            if (s.Kind == SelectorKind.Prefix || s.Matches(node)) return true;
        }
        return false;
    }

    public bool SourceMatches(PolicyNode node)
    {
        foreach (var s in Sources)
        {
            if (s.Matches(node)) return true;
        }
        return false;
    }

    private static bool Contains(IReadOnlyList<byte> list, int value)
    {
        foreach (var v in list)
        {
            if (v == value) return true;
        }
        return false;
    }
}

/// <summary>A test of the policy: the source may (accept) or may not (deny) open each "selector:port".</summary>
public sealed record PolicyTest(int Index, TextPosition At, Selector Source, int Protocol, IReadOnlyList<(Selector Target, ushort Port, string Text)> Accept, IReadOnlyList<(Selector Target, ushort Port, string Text)> Deny);

/// <summary>IP protocol numbers as the policy names them.</summary>
public static class IpProtocols
{
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte Sctp = 132;
    public const byte Icmpv6 = 58;

    private static readonly Dictionary<string, byte> Names = new(StringComparer.OrdinalIgnoreCase)
    {
        ["icmp"] = Icmp, ["igmp"] = 2, ["ipv4"] = 4, ["ip-in-ip"] = 4, ["tcp"] = Tcp, ["egp"] = 8, ["igp"] = 9, ["udp"] = Udp,
        ["gre"] = 47, ["esp"] = 50, ["ah"] = 51, ["ipv6-icmp"] = Icmpv6, ["icmpv6"] = Icmpv6, ["sctp"] = Sctp,
    };

    public static bool TryParse(string text, out byte protocol)
    {
        if (Names.TryGetValue(text, out protocol)) return true;
        return byte.TryParse(text, out protocol);
    }

    /// <summary>Protocols whose packets carry ports a rule can name.</summary>
    public static bool HasPorts(int protocol) => protocol is Tcp or Udp or Sctp;

    public static bool IsDefault(int protocol) => protocol is Tcp or Udp or Icmp or Icmpv6;
}
