using System.Net;
using Mesh.Coordinator.Policy;
using Xunit;

namespace Mesh.Coordinator.Tests;

public class PolicyTests
{
    private const string Example = """
        // Laptops reach servers over SSH; nothing else.
        {
          "groups": { "group:admins": ["alice@", "bob@"], },
          "hosts": { "db": "100.64.0.9", },
          "tagOwners": {
            "tag:laptop": ["group:admins"],
            /* servers are owned by admins too */
            "tag:server": ["group:admins"],
          },
          "acls": [
            { "action": "accept", "src": ["tag:laptop"], "dst": ["tag:server:22"] },
            { "action": "accept", "src": ["group:admins"], "dst": ["db:5432", "autogroup:self:*"], "proto": "tcp" },
          ],
          "tests": [
            { "src": "tag:laptop", "accept": ["tag:server:22"], "deny": ["tag:server:80"] },
          ],
        }
        """;

    private static PolicyNode Node(long id, string? user, params string[] tags) =>
        new(id, user is null ? null : user.GetHashCode() & 0xFFFF, user, tags, IPAddress.Parse($"100.64.0.{id}"), IPAddress.Parse($"fd7a:115c:a1e0::{id}"));

    [Fact]
    public void ReadsHuJsonWithCommentsAndTrailingCommasAndDecidesAsTailscaleDoes()
    {
        var policy = AclPolicy.Parse(Example);
        var laptop = Node(1, null, "tag:laptop");
        var server = Node(2, null, "tag:server");
        var alice = Node(3, "alice");
        var alice2 = Node(4, "alice");
        var bob = Node(5, "bob");
        var db = Node(9, null, "tag:db-less");
        Assert.True(policy.Allows(laptop, server, IpProtocols.Tcp, 22));
        Assert.False(policy.Allows(laptop, server, IpProtocols.Tcp, 80));
        Assert.True(policy.Allows(laptop, server, IpProtocols.Icmp, 0));
        Assert.False(policy.Allows(server, laptop, IpProtocols.Tcp, 22));
        Assert.True(policy.Allows(alice, db, IpProtocols.Tcp, 5432));
        Assert.False(policy.Allows(alice, db, IpProtocols.Udp, 5432));
        Assert.True(policy.Allows(alice, alice2, IpProtocols.Tcp, 8080));
        Assert.False(policy.Allows(alice, bob, IpProtocols.Tcp, 8080));
        Assert.True(policy.Sees(server, laptop));
        Assert.False(policy.Sees(alice, laptop));
        Assert.Null(policy.FirstFailingTest());
    }

    [Theory]
    [InlineData("{ \"acls\": [ { \"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"] } ], \"nope\": 1 }", 1, 69, "unknown key \"nope\"")]
    [InlineData("{\n  \"acls\": [\n    { \"action\": \"accept\", \"src\": [\"tag:x\"], \"dst\": [\"*:*\"] }\n  ]\n}", 3, 35, "tag \"tag:x\" has no owner")]
    [InlineData("{\n  \"groups\": { \"group:a\": [\"group:b\"] }\n}", 2, 27, "may hold only users")]
    [InlineData("{\n  \"acls\": [\n    { \"action\": \"deny\", \"src\": [\"*\"], \"dst\": [\"*:*\"] }\n  ]\n}", 3, 17, "the only action is \"accept\"")]
    [InlineData("{\n  \"acls\": [\n    { \"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:0\"] }\n  ]\n}", 3, 49, "is not a port")]
    [InlineData("{\n  \"acls\": [\n    { \"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:22\"], \"proto\": \"icmp\" }\n  ]\n}", 3, 49, "has no ports")]
    [InlineData("{\n  \"acls\": [\n    { \"action\": \"accept\", \"src\": [\"tag:a\"], \"dst\": [\"autogroup:self:*\"] }\n  ]\n, \"tagOwners\": {\"tag:a\": []}}", 3, 53, "autogroup:self takes sources")]
    [InlineData("{\n  \"acls\": [\n    { \"action\": \"accept\", \"src\": [\"*\"] \"dst\": [\"*:*\"] }\n  ]\n}", 3, 40, "")]
    [InlineData("{ \"hosts\": { \"web\": \"10.0.0.1/8\" } }", 1, 21, "is not an IP address or CIDR prefix")]
    public void ABadPolicyIsRefusedNamingItsLineAndColumn(string text, int line, int column, string message)
    {
        var error = Assert.Throws<PolicyException>(() => AclPolicy.Parse(text));
        Assert.Equal(new TextPosition(line, column), error.At);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void AFailingTestIsNamedWithWhatItExpected()
    {
        var policy = AclPolicy.Parse(Example.Replace("\"deny\": [\"tag:server:80\"]", "\"deny\": [\"tag:server:22\"]"));
        Assert.Equal("test 1 (line 15, column 5): tag:laptop -> tag:server:22: expected denied, got allowed", policy.FirstFailingTest());
    }

    [Fact]
    public void WithoutAclsEverythingIsAllowedAndAnEmptyListAllowsNothing()
    {
        var open = AclPolicy.Parse("{ \"groups\": {} }");
        var closed = AclPolicy.Parse("{ \"acls\": [] }");
        Assert.True(open.Allows(Node(1, "a"), Node(2, "b"), IpProtocols.Tcp, 1));
        Assert.False(closed.Allows(Node(1, "a"), Node(2, "b"), IpProtocols.Tcp, 1));
        Assert.False(closed.Sees(Node(1, "a"), Node(2, "b")));
    }

    [Fact]
    public void DestinationsSplitAtTheLastColonForIpv6AndCidrs()
    {
        var policy = AclPolicy.Parse("""{ "acls": [ { "action": "accept", "src": ["*"], "dst": ["[fd7a:115c:a1e0::2]:22", "100.64.0.0/30:80-81", "fd7a:115c:a1e0::5:443"] } ] }""");
        var a = Node(1, "a");
        Assert.True(policy.Allows(a, Node(2, "b"), IpProtocols.Tcp, 22));
        Assert.True(policy.Allows(a, Node(3, "b"), IpProtocols.Tcp, 81));
        Assert.False(policy.Allows(a, Node(4, "b"), IpProtocols.Tcp, 81));
        Assert.True(policy.Allows(a, Node(5, "b"), IpProtocols.Tcp, 443));
        Assert.False(policy.Allows(a, Node(5, "b"), IpProtocols.Tcp, 22));
    }

    /// <summary>
    /// A rule's autogroup:self reaches a user's nodes only from that user's nodes: a user who is not among its sources
    /// gets no filter rule for it (a token no peer holds), and one who is gets exactly one.
    /// </summary>
    [Fact]
    public void AutogroupSelfPutsARuleOnlyInTheFiltersOfTheUsersItsSourcesName()
    {
        var policy = AclPolicy.Parse(Example);
        var alice = NodeGrants.Of(policy, Node(3, "alice"));
        var carol = NodeGrants.Of(policy, Node(6, "carol"));
        Assert.Equal(new[] { Assert.Single(alice.Filter).Source }, alice.Targets);
        Assert.Empty(carol.Filter);
        Assert.Empty(carol.Targets);
    }
}
