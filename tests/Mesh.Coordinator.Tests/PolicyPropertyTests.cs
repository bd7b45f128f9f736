using System.Net;
using FsCheck;
using FsCheck.Fluent;
using Mesh.Coordinator.Policy;
using Xunit;

namespace Mesh.Coordinator.Tests;

/// <summary>
/// The compiled policy (each node's sources, targets and filter, which the coordinator sends and the agent enforces)
/// against a direct evaluation of the rules, on random policies and nodes.
/// </summary>
public class PolicyPropertyTests
{
    private static readonly string[] Users = ["u0", "u1", "u2"];
    private static readonly string[] Tags = ["tag:t0", "tag:t1", "tag:t2"];
    private static readonly string[] Sources = ["u0@", "u1@", "group:g0", "group:g1", "tag:t0", "tag:t1", "tag:t2", "*", "autogroup:member", "autogroup:tagged", "autogroup:danger-all", "100.64.0.0/30", "h0", "fd7a:115c:a1e0::5"];
    private static readonly string[] SelfSources = ["u0@", "u2@", "group:g0", "group:g1", "*", "autogroup:member"];
    private static readonly string[] Targets = ["u0@", "u2@", "group:g1", "tag:t0", "tag:t1", "*", "autogroup:member", "autogroup:tagged", "autogroup:self", "autogroup:internet", "100.64.0.4/31", "h0", "[fd7a:115c:a1e0::3]"];
    private static readonly string[] Ports = ["*", "22", "80,443", "1000-2000", "22-80"];
    private static readonly string?[] Protocols = [null, null, "tcp", "udp", "icmp", "17"];
    private static readonly (int Protocol, int Port)[] Probes = [(6, 22), (6, 80), (6, 443), (6, 1500), (6, 3000), (17, 22), (17, 1000), (1, 0), (58, 0), (132, 22)];

    private static Gen<string> Rule =>
        from sources in Gen.Elements(Sources).ListOf().Where(l => l.Count is > 0 and < 4)
        from targets in Gen.Elements(Targets).ListOf().Where(l => l.Count is > 0 and < 4)
        from ports in Gen.Elements(Ports).ListOf(targets.Count)
        from protocol in Gen.Elements(Protocols)
        from selfSource in Gen.Elements(SelfSources)
        select RuleText(sources, targets, ports, protocol, selfSource);

    private static string RuleText(IReadOnlyList<string> sources, IReadOnlyList<string> targets, IReadOnlyList<string> ports, string? protocol, string selfSource)
    {
        var self = targets.Contains("autogroup:self");
        var src = sources.Select(s => self && !SelfSources.Contains(s) ? selfSource : s);
        var portless = protocol == "icmp";
        var dst = targets.Select((t, i) => $"{t}:{(portless ? "*" : ports[i])}");
        var proto = protocol is null ? "" : $", \"proto\": \"{protocol}\"";
        return $"{{ \"action\": \"accept\", \"src\": [{Quoted(src)}], \"dst\": [{Quoted(dst)}]{proto} }}";
    }

    private static string Quoted(IEnumerable<string> items) => string.Join(", ", items.Select(i => $"\"{i}\""));

    private static Gen<(int User, int TagMask)> Owner =>
        from user in Gen.Choose(-1, Users.Length - 1)
        from tagMask in Gen.Choose(0, 7)
        select (user, tagMask);

    private static PolicyNode NodeAt(int index, int user, int tagMask) =>
        new(index, user < 0 ? null : user + 10, user < 0 ? null : Users[user], Tags.Where((_, i) => (tagMask & (1 << i)) != 0).ToArray(),
            IPAddress.Parse($"100.64.0.{index}"), IPAddress.Parse($"fd7a:115c:a1e0::{index}"));

    private static Gen<(string Policy, PolicyNode[] Nodes)> Case =>
        from rules in Rule.ListOf().Where(l => l.Count < 6)
        from g0 in Gen.SubListOf(Users)
        from g1 in Gen.SubListOf(Users)
        from owners in Owner.ArrayOf(7)
        let nodes = owners.Select((o, i) => NodeAt(i + 1, o.User, o.TagMask))
        select ($$"""
            {
              "groups": { "group:g0": [{{Quoted(g0.Select(u => u + "@"))}}], "group:g1": [{{Quoted(g1.Select(u => u + "@"))}}] },
              "hosts": { "h0": "100.64.0.6" },
              "tagOwners": { "tag:t0": ["u0@"], "tag:t1": ["group:g0"], "tag:t2": ["tag:t0"] },
              "acls": [ {{string.Join(",\n", rules)}} ],
            }
            """, nodes.ToArray());

    [Fact]
    public void TheCompiledPolicyAdmitsExactlyWhatTheRulesAllow()
    {
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            var policy = AclPolicy.Parse(c.Policy);
            var grants = c.Nodes.Select(n => NodeGrants.Of(policy, n)).ToArray();
            for (var a = 0; a < c.Nodes.Length; a++)
            {
                for (var b = 0; b < c.Nodes.Length; b++)
                {
                    if (a == b) continue;
                    foreach (var (protocol, port) in Probes)
                    {
                        var direct = policy.Allows(c.Nodes[a], c.Nodes[b], protocol, port);
                        var compiled = NodeGrants.Admits(grants[b].Filter, grants[a].Sources, protocol, port);
                        if (direct != compiled) return false;
                    }
                    var sees = NodeGrants.Sees(grants[a].Sources, grants[a].Targets, grants[b].Sources, grants[b].Targets);
                    if (sees != policy.Sees(c.Nodes[a], c.Nodes[b])) return false;
                }
            }
            return true;
        }).QuickCheckThrowOnFailure();
    }
}
