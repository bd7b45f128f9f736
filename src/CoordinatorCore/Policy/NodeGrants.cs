namespace Mesh.Coordinator.Policy;

/// <summary>
/// One rule of a node's packet filter: a peer whose sources hold <see cref="Source"/> may open these ports over these
/// protocols on the node (no protocols: TCP, UDP, ICMP and ICMPv6; ports matter only for TCP, UDP and SCTP).
/// </summary>
public sealed record GrantRule(ulong Source, IReadOnlyList<byte> Protocols, IReadOnlyList<PortRange> Ports);

/// <summary>
/// What the policy makes of one node, from the node alone (its user, tags and addresses), so a change to one node
/// never recomputes another: the tokens of the rules it is a source of, its filter (which tokens may open what on
/// it), and the tokens of that filter. Node A reaches B when a token of A's sources is in B's targets; each sees the
/// other when either reaches the other. A rule's token is a hash of what it says (<see cref="AclRule.Token"/>), so
/// an edit gives the edited rule a new token and leaves the others' (and the grants of the nodes it does not touch)
/// as they were; an agent that holds a new token before its new filter denies rather than grants by an old rule of
/// the same place. A rule with an autogroup:self dst also has one token per user, which only that user's nodes hold
/// on both sides.
/// </summary>
public sealed record NodeGrants(ulong[] Sources, ulong[] Targets, IReadOnlyList<GrantRule> Filter)
{
    public static NodeGrants Of(AclPolicy policy, PolicyNode node)
    {
        var sources = new List<ulong>();
        var filter = new List<GrantRule>();
        foreach (var rule in policy.Rules ?? [])
        {
            // A rule's autogroup:self reaches this node only from its user's nodes: without a source of the user,
            // its self token is one no peer holds (50 such rules put 50 dead rules in every user's filter).
            var self = node.OwnedByUser && node.UserId is { } id && rule.HasSelf && rule.SourceMayBeOfUser(node) ? SelfToken(rule.Token, id) : 0;
            if (rule.SourceMatches(node))
            {
                sources.Add(rule.Token);
                if (self != 0) sources.Add(self);
            }
            List<PortRange>? plain = null, own = null;
            foreach (var d in rule.Destinations)
            {
                if (d.Target.Kind == SelectorKind.Self)
                {
                    if (self != 0) (own ??= new()).AddRange(d.Ports);
                }
                else if (d.Target.Matches(node)) (plain ??= new()).AddRange(d.Ports);
            }
            if (plain is not null) filter.Add(new GrantRule(rule.Token, rule.Protocols, plain));
            if (own is not null) filter.Add(new GrantRule(self, rule.Protocols, own));
        }
        var targets = new List<ulong>(filter.Count);
        foreach (var rule in filter)
        {
            if (!targets.Contains(rule.Source)) targets.Add(rule.Source);
        }
        return new NodeGrants(SortedDistinct(sources), SortedDistinct(targets), filter);
    }

    /// <summary>Whether both grant exactly the same: then a new policy leaves the node's record as it was.</summary>
    public bool SameAs(NodeGrants other)
    {
        if (!Sources.AsSpan().SequenceEqual(other.Sources) || !Targets.AsSpan().SequenceEqual(other.Targets) || Filter.Count != other.Filter.Count) return false;
        for (var i = 0; i < Filter.Count; i++)
        {
            var (a, b) = (Filter[i], other.Filter[i]);
            if (a.Source != b.Source || !a.Protocols.SequenceEqual(b.Protocols) || !a.Ports.SequenceEqual(b.Ports)) return false;
        }
        return true;
    }

    /// <summary>A self rule's token for one user: the top bit set (rule tokens have it clear), the rest mixed from both (SplitMix64).</summary>
    public static ulong SelfToken(ulong rule, long userId)
    {
        var z = rule ^ ((ulong)userId * 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (z ^ (z >> 31)) | 1UL << 63;
    }

    /// <summary>Identical rules have one token: each appears once.</summary>
    private static ulong[] SortedDistinct(List<ulong> tokens)
    {
        tokens.Sort();
        var count = 0;
        for (var i = 0; i < tokens.Count; i++)
        {
            if (i == 0 || tokens[i] != tokens[i - 1]) tokens[count++] = tokens[i];
        }
        return tokens.GetRange(0, count).ToArray();
    }

    /// <summary>Whether a node with <paramref name="sources"/> may open the port on the node this filter is for: what the agent's filter decides.</summary>
    public static bool Admits(IReadOnlyList<GrantRule> filter, ulong[] sources, int protocol, int port)
    {
        foreach (var rule in filter)
        {
            if (System.Array.BinarySearch(sources, rule.Source) < 0) continue;
            if (rule.Protocols.Count == 0 ? !IpProtocols.IsDefault(protocol) : !rule.Protocols.Contains((byte)protocol)) continue;
            if (!IpProtocols.HasPorts(protocol)) return true;
            foreach (var range in rule.Ports)
            {
                if (range.Contains(port)) return true;
            }
        }
        return false;
    }

    /// <summary>Whether either of two nodes reaches the other: then each is in the other's netmap.</summary>
    public static bool Sees(ulong[] sourcesA, ulong[] targetsA, ulong[] sourcesB, ulong[] targetsB) => Intersect(sourcesA, targetsB) || Intersect(sourcesB, targetsA);

    private static bool Intersect(ulong[] a, ulong[] b)
    {
        int i = 0, j = 0;
        while (i < a.Length && j < b.Length)
        {
            if (a[i] == b[j]) return true;
            if (a[i] < b[j]) i++;
            else j++;
        }
        return false;
    }
}
