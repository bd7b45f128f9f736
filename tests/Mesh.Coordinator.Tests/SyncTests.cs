using Google.Protobuf;
using Grpc.Core;
using Mesh.Control;
using Mesh.Coordinator.Control;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Tests;

public sealed class SyncTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    // Liveness bounds, not timing assertions: how fast changes travel is measured by scripts/bench-coordinator.
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(10);
    private CoordinatorRig _rig = null!;
    private string _key = null!;

    public async Task InitializeAsync()
    {
        _rig = await CoordinatorRig.StartAsync(new MeshOptions { EphemeralTimeout = TimeSpan.FromMilliseconds(500) });
        _key = await _rig.CreateKeyAsync(reusable: true);
    }

    public async Task DisposeAsync() => await _rig.DisposeAsync();

    [Fact]
    public async Task FullMapFirstThenDeltas()
    {
        await using var a = await _rig.JoinAsync("a", _key, TestAgent.Candidates("192.0.2.1:1000"));
        await Eventually.HoldsAsync(() => a.Read(v => v.FullMapsReceived) == 1, Prompt, "a's full map");
        await using var b = await _rig.JoinAsync("b", _key, TestAgent.Candidates("192.0.2.2:2000"));
        // The map b gets first may predate b itself (maps are shared); b's own entry follows as a delta.
        await Eventually.HoldsAsync(() => b.Read(v => v.Peers.Count == 1 && v.Self is not null), Prompt, "b's map lists a and b itself");

        var peerA = b.Read(v => v.FindPeer(a.NodeKey))!;
        Assert.Equal("a", peerA.Name);
        Assert.True(peerA.Online);
        Assert.Equal("192.0.2.1:1000", peerA.Endpoints.Candidates.Single().Address);
        Assert.Equal(a.Registration.Addresses, peerA.Addresses);
        Assert.Equal(2, b.Read(v => v.StunServers.Count));
        Assert.Equal("b", b.Read(v => v.Self!.Name));

        // a learns of b by delta, not by another full map.
        await Eventually.HoldsAsync(() => a.Read(v => v.FindPeer(b.NodeKey)) is { Online: true }, Prompt, "a hears b joined");
        Assert.Equal(1, a.Read(v => v.FullMapsReceived));

        var before = b.Serial;
        await a.UpdateEndpointsAsync(TestAgent.Candidates("198.51.100.7:3333"));
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)!.Endpoints.Candidates.Single().Address) == "198.51.100.7:3333", Prompt, "endpoint change reaches b");
        Assert.True(b.Serial > before);
        Assert.Equal(1, b.Read(v => v.FullMapsReceived));
    }

    [Fact]
    public async Task OfflineAndOnlineReachPeers()
    {
        await using var a = await _rig.JoinAsync("a", _key);
        await using var b = await _rig.JoinAsync("b", _key);
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is { Online: true }, Prompt, "a online");
        await a.DisconnectAsync();
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is { Online: false, LastSeen: not null }, Prompt, "a offline with last seen");
        await a.ConnectAsync(TestAgent.Candidates("192.0.2.1:1"));
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is { Online: true }, Prompt, "a back online");
    }

    [Fact]
    public async Task ReconnectingAgentResumesFromItsSerial()
    {
        await using var a = await _rig.JoinAsync("a", _key);
        await using var b = await _rig.JoinAsync("b", _key);
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is not null, Prompt, "b sees a");
        await b.DisconnectAsync();
        var serial = b.Serial;
        await a.UpdateEndpointsAsync(TestAgent.Candidates("203.0.113.5:5555"));
        await using var c = await _rig.JoinAsync("c", _key);

        await b.ConnectAsync(TestAgent.Candidates("192.0.2.2:2"), lastSerial: serial);
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(c.NodeKey)) is not null && b.Read(v => v.FindPeer(a.NodeKey)!.Endpoints.Candidates[0].Address) == "203.0.113.5:5555",
            Prompt, "b caught up");
        Assert.Equal(1, b.Read(v => v.FullMapsReceived));
    }

    [Fact]
    public async Task AnUnknownSerialGetsAFreshFullMap()
    {
        await using var a = await _rig.JoinAsync("a", _key);
        await Eventually.HoldsAsync(() => a.Read(v => v.FullMapsReceived) == 1, Prompt, "first map");
        await a.DisconnectAsync();
        await a.ConnectAsync(TestAgent.Candidates("192.0.2.1:1"), lastSerial: 12345);
        await Eventually.HoldsAsync(() => a.Read(v => v.FullMapsReceived) == 2, Prompt, "a second full map");
    }

    [Fact]
    public async Task ConnectionRequestsReachThePeerWithTheRequestersCandidates()
    {
        await using var a = await _rig.JoinAsync("a", _key, TestAgent.Candidates("192.0.2.1:1111", "10.0.0.5:1111"));
        await using var b = await _rig.JoinAsync("b", _key);
        await a.SendAsync(new SyncRequest { Connect = new ConnectRequest { PeerKey = b.NodeKey } });
        await Eventually.HoldsAsync(() => b.ConnectNotices.Count == 1, Prompt, "b gets a's request");
        var notice = b.ConnectNotices[0];
        Assert.Equal(a.NodeKey, notice.PeerKey);
        Assert.Equal(["192.0.2.1:1111", "10.0.0.5:1111"], notice.Endpoints.Candidates.Select(c => c.Address));
    }

    [Fact]
    public async Task ExpiredNodeLeavesEveryNetmapAndIsRefused()
    {
        await using var a = await _rig.JoinAsync("a", _key);
        await using var b = await _rig.JoinAsync("b", _key);
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is not null, Prompt, "b sees a");

        await _rig.Admin.ExpireNodeAsync(new NodeRef { Node = "a" });
        var took = await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is null, Prompt, "a removed from b's map");
        output.WriteLine($"expired node left the peer's netmap {took.TotalMilliseconds:F0} ms after the admin call returned");
        await Eventually.HoldsAsync(() => a.StreamEnded, Prompt, "a's stream ended");
        Assert.Equal(StatusCode.Unauthenticated, a.StreamError?.StatusCode);

        using var retry = _rig.NewClient(a.Registration.SessionToken).Sync();
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await retry.RequestStream.WriteAsync(new SyncRequest { Hello = await a.HelloAsync() });
            await retry.ResponseStream.MoveNext(CancellationToken.None);
        });
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<RpcException>(() => a.RegisterAsync(""))).StatusCode);
    }

    [Fact]
    public async Task RevokingAKeyWithItsNodesRemovesThem()
    {
        var leaked = await _rig.CreateKeyAsync(reusable: true);
        await using var a = await _rig.JoinAsync("a", leaked);
        await using var b = await _rig.JoinAsync("b", _key);
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is not null, Prompt, "b sees a");
        await _rig.Admin.RevokePreAuthKeyAsync(new RevokePreAuthKeyRequest { Id = Secrets.IdOf(leaked, Secrets.PreAuthKeyPrefix), ExpireNodes = true });
        var took = await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is null, Prompt, "a removed");
        output.WriteLine($"revoked key's node left the peer's netmap {took.TotalMilliseconds:F0} ms after the admin call returned");
        await Eventually.HoldsAsync(() => a.StreamError?.StatusCode == StatusCode.Unauthenticated, Prompt, "a refused");
        Assert.False(b.StreamEnded);
    }

    [Fact]
    public async Task DeletedNodeLeavesEveryNetmap()
    {
        await using var a = await _rig.JoinAsync("a", _key);
        await using var b = await _rig.JoinAsync("b", _key);
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is not null, Prompt, "b sees a");
        await _rig.Admin.DeleteNodeAsync(new NodeRef { Node = a.Registration.NodeId.ToString() });
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is null, Prompt, "a removed");
        await Eventually.HoldsAsync(() => a.StreamError?.StatusCode == StatusCode.Unauthenticated, Prompt, "a refused");
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => _rig.Admin.GetNodeAsync(new NodeRef { Node = "a" }).ResponseAsync)).StatusCode);
    }

    [Fact]
    public async Task EphemeralNodesAreRemovedWhenTheyGoOffline()
    {
        var ephemeral = await _rig.CreateKeyAsync(ephemeral: true);
        await using var a = await _rig.JoinAsync("phone", ephemeral);
        await using var b = await _rig.JoinAsync("b", _key);
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is not null, Prompt, "b sees the phone");
        await a.DisconnectAsync();
        await Eventually.HoldsAsync(() => b.Read(v => v.FindPeer(a.NodeKey)) is null, Prompt, "the phone is removed");
        Assert.DoesNotContain((await _rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes, n => n.Name == "phone");
    }

    [Fact]
    public async Task ANewerStreamOfTheSameNodeReplacesTheOlder()
    {
        await using var a = await _rig.JoinAsync("a", _key);
        await using var again = a.SecondStream();
        await again.ConnectAsync(TestAgent.Candidates("192.0.2.9:9"));
        await Eventually.HoldsAsync(() => a.StreamEnded, Prompt, "the older stream ends");
        Assert.Equal(StatusCode.Aborted, a.StreamError?.StatusCode);
    }

    [Fact]
    public async Task ACopiedTokenWithoutTheNodeKeyOpensNothingAndLeavesTheStreamAlone()
    {
        await using var a = await _rig.JoinAsync("a", _key);
        await using var thief = a.StolenToken();
        await thief.ConnectAsync(TestAgent.Candidates("198.51.100.7:9"));
        await Eventually.HoldsAsync(() => thief.StreamEnded, Prompt, "the thief's stream is refused");
        Assert.Equal(StatusCode.Unauthenticated, thief.StreamError?.StatusCode);
        Assert.False(a.StreamEnded);
        Assert.DoesNotContain((await _rig.Admin.GetNodeAsync(new NodeRef { Node = "a" })).Endpoints.Candidates, c => c.Address.StartsWith("198.51.100.7", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RestartKeepsNodesKeysAndAddresses()
    {
        var reusable = await _rig.CreateKeyAsync(reusable: true);
        await using var a = await _rig.JoinAsync("a", reusable);
        var before = (await _rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes;
        var keysBefore = (await _rig.Admin.ListPreAuthKeysAsync(new ListPreAuthKeysRequest())).Keys;
        await a.DisconnectAsync();

        await _rig.RestartAsync();
        var after = (await _rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes;
        Assert.Equal(before.Select(n => (n.Id, n.Name, n.NodeKey, string.Join(",", n.Addresses))), after.Select(n => (n.Id, n.Name, n.NodeKey, string.Join(",", n.Addresses))));
        Assert.Equal(keysBefore.Select(k => k.Id), (await _rig.Admin.ListPreAuthKeysAsync(new ListPreAuthKeysRequest())).Keys.Select(k => k.Id));

        // The agent's token survives, and a new node gets a fresh address, never a used one.
        await a.ConnectAsync(TestAgent.Candidates("192.0.2.1:1"));
        await Eventually.HoldsAsync(() => a.Read(v => v.Self) is not null, Prompt, "a reconnected after the restart");
        var newcomer = await new TestAgent(_rig, "new").RegisterAsync(reusable);
        Assert.DoesNotContain(newcomer.Addresses[0], before.SelectMany(n => n.Addresses).Select(x => x + "/32"));
    }
}

