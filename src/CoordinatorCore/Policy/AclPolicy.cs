using System.Net;
using Mesh.Coordinator.Control;

namespace Mesh.Coordinator.Policy;

/// <summary>
/// A policy in Tailscale's format (HuJSON: groups, hosts, tagOwners, acls, autoApprovers, tests), read and checked
/// as Headscale reads it: keys are case-insensitive, unknown keys are refused, a group holds users only, every tag a
/// rule names has an owner, and every error names its line and column. Without "acls" everything is allowed, as
/// without a policy; "acls": [] allows nothing. Immutable.
/// </summary>
public sealed class AclPolicy
{
    private static readonly string[] TopLevelKeys = ["groups", "hosts", "tagOwners", "acls", "autoApprovers", "tests"];

    private readonly Dictionary<string, IReadOnlySet<string>> _groups = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IPNetwork> _hosts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<Selector>> _tagOwners = new(StringComparer.Ordinal);
    private readonly Dictionary<IPNetwork, IReadOnlyList<Selector>> _routeApprovers = new();
    private readonly List<Selector> _exitNodeApprovers = new();
    private readonly List<PolicyTest> _tests = new();
    private List<AclRule>? _rules;

    private AclPolicy(string text) => Text = text;

    /// <summary>The file as it was set, comments and all.</summary>
    public string Text { get; }

    /// <summary>The accept rules, or null when the file has no "acls" (everything is allowed).</summary>
    public IReadOnlyList<AclRule>? Rules => _rules;

    public IReadOnlyDictionary<string, IReadOnlyList<Selector>> TagOwners => _tagOwners;

    /// <summary>Who may advertise which routes without an admin's approval (the routes work uses it).</summary>
    public IReadOnlyDictionary<IPNetwork, IReadOnlyList<Selector>> RouteApprovers => _routeApprovers;

    public IReadOnlyList<Selector> ExitNodeApprovers => _exitNodeApprovers;

    public IReadOnlyList<PolicyTest> Tests => _tests;

    /// <summary>Reads and checks a policy file; <see cref="PolicyException"/> names the line and column at fault.</summary>
    public static AclPolicy Parse(string text)
    {
        var root = HuJson.Parse(text) as HuJsonObject ?? throw new PolicyException(new TextPosition(1, 1), "the policy must be an object");
        var policy = new AclPolicy(text);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, at, _) in root.Members)
        {
            if (FindKey(TopLevelKeys, key) is null) throw new PolicyException(at, $"unknown key \"{key}\" (a policy has {string.Join(", ", TopLevelKeys)})");
            if (!seen.Add(key)) throw new PolicyException(at, $"\"{key}\" appears twice");
        }
        // Groups, hosts and tag owners first: rules, approvers and tests refer to them wherever they are in the file.
        if (Member(root, "groups") is { } groups) policy.ReadGroups(Object(groups, "groups"));
        if (Member(root, "hosts") is { } hosts) policy.ReadHosts(Object(hosts, "hosts"));
        if (Member(root, "tagOwners") is { } owners) policy.ReadTagOwners(Object(owners, "tagOwners"));
        if (Member(root, "acls") is { } acls) policy.ReadAcls(Array(acls, "acls"));
        if (Member(root, "autoApprovers") is { } approvers) policy.ReadAutoApprovers(Object(approvers, "autoApprovers"));
        if (Member(root, "tests") is { } tests) policy.ReadTests(Array(tests, "tests"));
        return policy;
    }

    /// <summary>Reads the policy and runs its tests: the policy, or what is wrong with it (where, or which test), as an admin sees it.</summary>
    public static Result<AclPolicy> Check(string text)
    {
        AclPolicy policy;
        try
        {
            policy = Parse(text);
        }
        catch (PolicyException ex)
        {
            return Problem.InvalidArgument($"The policy is not valid: {ex.Message}.");
        }
        if (policy.FirstFailingTest() is { } failure) return Problem.InvalidArgument($"The policy's tests fail: {failure}.");
        return policy;
    }

    /// <summary>Whether <paramref name="source"/> may open <paramref name="port"/> over <paramref name="protocol"/> on <paramref name="destination"/>, rule by rule.</summary>
    public bool Allows(PolicyNode source, PolicyNode destination, int protocol, int port)
    {
        if (_rules is null) return true;
        foreach (var rule in _rules)
        {
            if (!rule.AllowsProtocol(protocol) || !rule.SourceMatches(source)) continue;
            foreach (var d in rule.Destinations)
            {
                if (!TargetMatches(d.Target, source, destination)) continue;
                if (!IpProtocols.HasPorts(protocol)) return true;
                foreach (var range in d.Ports)
                {
                    if (range.Contains(port)) return true;
                }
            }
        }
        return false;
    }

    /// <summary>Whether either node may open anything on the other: then each is in the other's netmap.</summary>
    public bool Sees(PolicyNode a, PolicyNode b) => _rules is null || Reaches(a, b) || Reaches(b, a);

    private bool Reaches(PolicyNode source, PolicyNode destination)
    {
        foreach (var rule in _rules!)
        {
            if (!rule.SourceMatches(source)) continue;
            foreach (var d in rule.Destinations)
            {
                if (TargetMatches(d.Target, source, destination)) return true;
            }
        }
        return false;
    }

    private static bool TargetMatches(Selector target, PolicyNode source, PolicyNode destination) =>
        target.Kind == SelectorKind.Self ? source.OwnedByUser && destination.OwnedByUser && source.User == destination.User : target.Matches(destination);

    /// <summary>Runs the file's tests; the first that fails, in words naming it, or null when all pass.</summary>
    public string? FirstFailingTest()
    {
        foreach (var test in _tests)
        {
            var sources = Hypothetical(test.Source);
            foreach (var (target, port, text) in test.Accept)
            {
                foreach (var destination in Hypothetical(target))
                {
                    foreach (var source in sources)
                    {
                        if (!Allows(source, destination, test.Protocol, port)) return $"test {test.Index + 1} ({test.At}): {test.Source} -> {text}: expected allowed, got denied";
                    }
                }
            }
            foreach (var (target, port, text) in test.Deny)
            {
                foreach (var destination in Hypothetical(target))
                {
                    foreach (var source in sources)
                    {
                        if (Allows(source, destination, test.Protocol, port)) return $"test {test.Index + 1} ({test.At}): {test.Source} -> {text}: expected denied, got allowed";
                    }
                }
            }
        }
        return null;
    }

    /// <summary>
    /// The nodes a test's selector stands for, whichever nodes exist: a node of the user (of each user of a group),
    /// a node with the tag, a node at the address. Tests hold for the policy, not for today's nodes.
    /// </summary>
    private static List<PolicyNode> Hypothetical(Selector selector)
    {
        switch (selector.Kind)
        {
            case SelectorKind.User:
                return [UserNode(selector.Name!)];
            case SelectorKind.Group:
                var nodes = new List<PolicyNode>();
                foreach (var user in selector.Users!) nodes.Add(UserNode(user));
                return nodes;
            case SelectorKind.Tag:
                return [new PolicyNode(0, null, null, [selector.Name!], null, null)];
            default:
                var address = selector.Prefix!.Value.BaseAddress;
                var v4 = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork;
                return [new PolicyNode(0, null, null, [], v4 ? address : null, v4 ? null : address)];
        }
    }

    private static PolicyNode UserNode(string user) => new(0, 0, user, [], null, null);

    private void ReadGroups(HuJsonObject groups)
    {
        foreach (var (name, at, value) in groups.Members)
        {
            if (!name.StartsWith("group:", StringComparison.Ordinal) || name.Length == 6) throw new PolicyException(at, $"group \"{name}\" must be named group:NAME");
            if (_groups.ContainsKey(name)) throw new PolicyException(at, $"group \"{name}\" appears twice");
            var users = new HashSet<string>(StringComparer.Ordinal);
            foreach (var member in Array(value, name).Items)
            {
                var text = String(member, $"a member of {name}");
                if (text.StartsWith("group:", StringComparison.Ordinal) || text.StartsWith("tag:", StringComparison.Ordinal) || text.StartsWith("autogroup:", StringComparison.Ordinal))
                {
                    throw new PolicyException(member.At, $"group {name} may hold only users, not \"{text}\"");
                }
                users.Add(UserName(text));
            }
            _groups[name] = users;
        }
    }

    private void ReadHosts(HuJsonObject hosts)
    {
        foreach (var (name, at, value) in hosts.Members)
        {
            if (name.Length == 0 || name.Contains(':') || name.Contains('@') || name.Contains('/') || name == "*") throw new PolicyException(at, $"host name \"{name}\" may not hold ':', '@', '/' or be '*'");
            var text = String(value, $"host {name}");
            if (!TryPrefix(text, out var prefix)) throw new PolicyException(value.At, $"host {name}: \"{text}\" is not an IP address or CIDR prefix");
            _hosts[name] = prefix;
        }
    }

    private void ReadTagOwners(HuJsonObject owners)
    {
        // Owners may be tags declared further down: names first, then the owners.
        foreach (var (tag, at, _) in owners.Members)
        {
            CheckTagName(tag, at);
            _tagOwners[tag] = [];
        }
        foreach (var (tag, _, value) in owners.Members) _tagOwners[tag] = Principals(value, tag, $"an owner of {tag}");
    }

    private void ReadAcls(HuJsonArray acls)
    {
        _rules = new List<AclRule>(acls.Items.Count);
        foreach (var item in acls.Items)
        {
            var rule = Object(item, "an acl");
            HuJsonValue? src = null, dst = null;
            var protocols = new List<byte>();
            string? protoText = null;
            foreach (var (key, at, value) in rule.Members)
            {
                if (key.StartsWith('#')) continue;
                switch (key.ToLowerInvariant())
                {
                    case "action":
                        var action = String(value, "action");
                        if (action != "accept") throw new PolicyException(value.At, $"action \"{action}\": the only action is \"accept\" (what no rule accepts is denied)");
                        break;
                    case "src": src = value; break;
                    case "dst": dst = value; break;
                    case "proto":
                        protoText = value is HuJsonNumber n ? n.Value.ToString() : String(value, "proto");
                        if (!IpProtocols.TryParse(protoText, out var protocol)) throw new PolicyException(value.At, $"proto \"{protoText}\" is not a protocol name or number (0-255)");
                        protocols.Add(protocol);
                        break;
                    default:
                        throw new PolicyException(at, $"unknown key \"{key}\" in an acl (an acl has action, src, dst and proto)");
                }
            }
            if (src is null) throw new PolicyException(rule.At, "this acl has no \"src\"");
            if (dst is null) throw new PolicyException(rule.At, "this acl has no \"dst\"");
            var sources = new List<Selector>();
            foreach (var s in Array(src, "src").Items)
            {
                var selector = ParseSelector(String(s, "a src"), s.At);
                if (selector.Kind is SelectorKind.Self or SelectorKind.Internet) throw new PolicyException(s.At, $"\"{selector.Text}\" can only be a dst");
                sources.Add(selector);
            }
            var destinations = new List<Destination>();
            foreach (var d in Array(dst, "dst").Items)
            {
                var destination = ParseDestination(String(d, "a dst"), d.At);
                foreach (var range in destination.Ports)
                {
                    if (range != PortRange.Any && protocols.Count > 0 && !IpProtocols.HasPorts(protocols[0]))
                    {
                        throw new PolicyException(d.At, $"proto \"{protoText}\" has no ports: write \"{destination.Target.Text}:*\"");
                    }
                }
                if (destination.Target.Kind == SelectorKind.Self)
                {
                    foreach (var s in sources)
                    {
                        if (s.Kind is not (SelectorKind.User or SelectorKind.Group or SelectorKind.Member or SelectorKind.All))
                        {
                            throw new PolicyException(d.At, $"autogroup:self takes sources that are users, groups, autogroup:member or *, not \"{s.Text}\"");
                        }
                    }
                }
                destinations.Add(destination);
            }
            _rules.Add(new AclRule(_rules.Count, rule.At, sources, destinations, protocols));
        }
    }

    private void ReadAutoApprovers(HuJsonObject approvers)
    {
        foreach (var (key, at, value) in approvers.Members)
        {
            switch (key.ToLowerInvariant())
            {
                case "routes":
                    foreach (var (route, routeAt, owners) in Object(value, "routes").Members)
                    {
                        if (!TryPrefix(route, out var prefix) || !route.Contains('/')) throw new PolicyException(routeAt, $"route \"{route}\" is not a CIDR prefix");
                        _routeApprovers[prefix] = Principals(owners, $"route {route}", $"an approver of route {route}");
                    }
                    break;
                case "exitnode":
                    _exitNodeApprovers.AddRange(Principals(value, "exitNode", "an approver of exitNode"));
                    break;
                default:
                    throw new PolicyException(at, $"unknown key \"{key}\" in autoApprovers (it has routes and exitNode)");
            }
        }
    }

    /// <summary>A list of who owns a tag or approves a route: users, groups and tags only.</summary>
    private List<Selector> Principals(HuJsonValue value, string list, string role)
    {
        var principals = new List<Selector>();
        foreach (var item in Array(value, list).Items)
        {
            var text = String(item, role);
            var selector = ParseSelector(text, item.At);
            if (selector.Kind is not (SelectorKind.User or SelectorKind.Group or SelectorKind.Tag)) throw new PolicyException(item.At, $"{role} is a user, a group or a tag, not \"{text}\"");
            principals.Add(selector);
        }
        return principals;
    }

    private void ReadTests(HuJsonArray tests)
    {
        foreach (var item in tests.Items)
        {
            var test = Object(item, "a test");
            Selector? source = null;
            var protocol = IpProtocols.Tcp;
            var accept = new List<(Selector, ushort, string)>();
            var deny = new List<(Selector, ushort, string)>();
            foreach (var (key, at, value) in test.Members)
            {
                switch (key.ToLowerInvariant())
                {
                    case "src":
                        source = ParseSelector(String(value, "src"), value.At);
                        if (source.Kind is not (SelectorKind.User or SelectorKind.Group or SelectorKind.Tag or SelectorKind.Prefix)) throw new PolicyException(value.At, $"a test's src is a user, a group, a tag, a host or an IP, not \"{source.Text}\"");
                        break;
                    case "proto":
                        var text = value is HuJsonNumber n ? n.Value.ToString() : String(value, "proto");
                        if (!IpProtocols.TryParse(text, out protocol)) throw new PolicyException(value.At, $"proto \"{text}\" is not a protocol name or number (0-255)");
                        break;
                    case "accept":
                        accept.AddRange(TestTargets(value, "accept"));
                        break;
                    case "deny":
                        deny.AddRange(TestTargets(value, "deny"));
                        break;
                    default:
                        throw new PolicyException(at, $"unknown key \"{key}\" in a test (a test has src, proto, accept and deny)");
                }
            }
            if (source is null) throw new PolicyException(test.At, "this test has no \"src\"");
            _tests.Add(new PolicyTest(_tests.Count, test.At, source, protocol, accept, deny));
        }
    }

    private IEnumerable<(Selector, ushort, string)> TestTargets(HuJsonValue value, string what)
    {
        var list = new List<(Selector, ushort, string)>();
        foreach (var item in Array(value, what).Items)
        {
            var text = String(item, $"an entry of {what}");
            var destination = ParseDestination(text, item.At);
            if (destination.Target.Kind is not (SelectorKind.User or SelectorKind.Group or SelectorKind.Tag or SelectorKind.Prefix)
                || destination.Ports.Count != 1 || destination.Ports[0].First != destination.Ports[0].Last)
            {
                throw new PolicyException(item.At, $"a test's {what} entry is one user, group, tag, host or IP and one port, not \"{text}\"");
            }
            list.Add((destination.Target, destination.Ports[0].First, text));
        }
        return list;
    }

    /// <summary>"selector:ports", split at the last colon ("[fd7a::1]:22" and "fd7a::/48:22" both work).</summary>
    private Destination ParseDestination(string text, TextPosition at)
    {
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1) throw new PolicyException(at, $"dst \"{text}\" must be SELECTOR:PORTS (for example tag:server:22 or *:*)");
        var target = text[..colon];
        if (target.StartsWith('[') && target.EndsWith(']')) target = target[1..^1];
        var selector = ParseSelector(target, at);
        if (selector.Kind == SelectorKind.DangerAll) throw new PolicyException(at, "autogroup:danger-all can only be a src");
        return new Destination(selector, ParsePorts(text[(colon + 1)..], at));
    }

    private static List<PortRange> ParsePorts(string text, TextPosition at)
    {
        if (text == "*") return [PortRange.Any];
        var ranges = new List<PortRange>();
        foreach (var part in text.Split(','))
        {
            var dash = part.IndexOf('-');
            var (first, last) = dash < 0 ? (part, part) : (part[..dash], part[(dash + 1)..]);
            if (!ushort.TryParse(first, out var from) || !ushort.TryParse(last, out var to) || from == 0 || to < from)
            {
                throw new PolicyException(at, $"ports \"{text}\": \"{part}\" is not a port (1-65535) or a range of them (1000-2000)");
            }
            ranges.Add(new PortRange(from, to));
        }
        return ranges;
    }

    /// <summary>Tailscale's order: an IP or CIDR, *, a user (it has @), group:, tag:, autogroup:, else a host's name.</summary>
    private Selector ParseSelector(string text, TextPosition at)
    {
        if (text == "*") return new Selector(SelectorKind.All, text);
        if (TryPrefix(text, out var prefix)) return new Selector(SelectorKind.Prefix, text, Prefix: prefix);
        if (text.StartsWith("group:", StringComparison.Ordinal))
        {
            if (!_groups.TryGetValue(text, out var users)) throw new PolicyException(at, $"group \"{text}\" is not defined in \"groups\"");
            return new Selector(SelectorKind.Group, text, Users: users);
        }
        if (text.StartsWith("tag:", StringComparison.Ordinal))
        {
            if (!_tagOwners.ContainsKey(text)) throw new PolicyException(at, $"tag \"{text}\" has no owner in \"tagOwners\"");
            return new Selector(SelectorKind.Tag, text, Name: text);
        }
        if (text.StartsWith("autogroup:", StringComparison.Ordinal))
        {
            return text switch
            {
                "autogroup:member" => new Selector(SelectorKind.Member, text),
                "autogroup:tagged" => new Selector(SelectorKind.Tagged, text),
                "autogroup:self" => new Selector(SelectorKind.Self, text),
                "autogroup:internet" => new Selector(SelectorKind.Internet, text),
                "autogroup:danger-all" => new Selector(SelectorKind.DangerAll, text),
                _ => throw new PolicyException(at, $"\"{text}\" is not an autogroup (member, tagged, self, internet, danger-all)"),
            };
        }
        if (text.Contains('@')) return new Selector(SelectorKind.User, text, Name: UserName(text));
        if (_hosts.TryGetValue(text, out var host)) return new Selector(SelectorKind.Prefix, text, Prefix: host);
        throw new PolicyException(at, $"\"{text}\" is not an IP, a CIDR, *, a user (alice@), a group:, a tag:, an autogroup: or a host in \"hosts\"");
    }

    /// <summary>"alice@" is the user alice; "alice@example.com" is the user of that name.</summary>
    private static string UserName(string text) => text.EndsWith('@') ? text[..^1] : text;

    private static void CheckTagName(string tag, TextPosition at)
    {
        var name = tag.StartsWith("tag:", StringComparison.Ordinal) ? tag[4..] : "";
        if (name.Length == 0 || !char.IsAsciiLetter(name[0]) || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
        {
            throw new PolicyException(at, $"tag \"{tag}\" must be tag:NAME, the name a letter then letters, digits or '-'");
        }
    }

    private static bool TryPrefix(string text, out IPNetwork prefix)
    {
        var slash = text.IndexOf('/');
        if (slash >= 0)
        {
            prefix = default;
            if (!IPAddress.TryParse(text[..slash], out var network) || !int.TryParse(text[(slash + 1)..], out var length)) return false;
            if (length < 0 || length > network.GetAddressBytes().Length * 8 || !HostBitsClear(network, length)) return false;
            prefix = new IPNetwork(network, length);
            return true;
        }
        if (IPAddress.TryParse(text, out var address) && !text.Contains('%'))
        {
            prefix = new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
            return true;
        }
        prefix = default;
        return false;
    }

    /// <summary>"10.0.0.1/8" is a typo for an address or for 10.0.0.0/8: refused rather than guessed.</summary>
    private static bool HostBitsClear(IPAddress network, int length)
    {
        var bytes = network.GetAddressBytes();
        for (var bit = length; bit < bytes.Length * 8; bit++)
        {
            if ((bytes[bit / 8] & (0x80 >> (bit % 8))) != 0) return false;
        }
        return true;
    }

    private static HuJsonValue? Member(HuJsonObject o, string key)
    {
        foreach (var (k, _, v) in o.Members)
        {
            if (string.Equals(k, key, StringComparison.OrdinalIgnoreCase)) return v;
        }
        return null;
    }

    private static string? FindKey(string[] keys, string key)
    {
        foreach (var k in keys)
        {
            if (string.Equals(k, key, StringComparison.OrdinalIgnoreCase)) return k;
        }
        return null;
    }

    private static HuJsonObject Object(HuJsonValue value, string what) => value as HuJsonObject ?? throw new PolicyException(value.At, $"{what} must be an object");

    private static HuJsonArray Array(HuJsonValue value, string what) => value as HuJsonArray ?? throw new PolicyException(value.At, $"{what} must be a list");

    private static string String(HuJsonValue value, string what) => value is HuJsonString s ? s.Value : throw new PolicyException(value.At, $"{what} must be a string");
}
