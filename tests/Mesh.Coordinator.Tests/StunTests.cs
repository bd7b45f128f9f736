using System.Net;
using System.Net.Sockets;
using Mesh.Traversal.Stun;
using Mesh.WireGuard.Core;

namespace Mesh.Coordinator.Tests;

public sealed class StunTests : IAsyncLifetime
{
    private CoordinatorRig _rig = null!;

    public async Task InitializeAsync() => _rig = await CoordinatorRig.StartAsync();

    public async Task DisposeAsync() => await _rig.DisposeAsync();

    [Fact]
    public async Task BothPortsAnswerBindingRequestsWithTheSourceAddress()
    {
        using var client = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var local = (IPEndPoint)client.Client.LocalEndPoint!;
        foreach (var port in _rig.Host.Stun.Ports)
        {
            var transaction = Guid.NewGuid().ToByteArray()[..12];
            var request = new byte[64];
            var length = StunMessage.WriteBindingRequest(request, transaction);
            await client.SendAsync(request.AsMemory(0, length), new IPEndPoint(IPAddress.Loopback, port));
            var response = (await client.ReceiveAsync().WaitAsync(TimeSpan.FromSeconds(5))).Buffer;
            Assert.Equal(StunParseResult.Ok, StunMessage.Validate(response, new ushort[4], out _));
            Assert.Equal(StunMessage.BindingSuccess, StunMessage.TypeOf(response));
            Assert.Equal(transaction, StunMessage.TransactionId(response).ToArray());
            Assert.True(StunMessage.TryReadMappedAddress(response, out var mapped));
            Assert.Equal(new NetEndpoint(local), mapped);
        }
        Assert.NotEqual(_rig.Host.Stun.Ports[0], _rig.Host.Stun.Ports[1]);
    }

    [Fact]
    public async Task MalformedPacketsAreDroppedAndCountedNeverAnswered()
    {
        using var client = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var server = new IPEndPoint(IPAddress.Loopback, _rig.Host.Stun.Ports[0]);
        var valid = new byte[64];
        var length = StunMessage.WriteBindingRequest(valid, new byte[12]);
        var truncated = valid[..(length - 3)];
        var badFingerprint = valid[..length];
        badFingerprint[^1] ^= 1;
        var response = new byte[64];
        StunMessage.WriteBindingSuccess(response, new byte[12], NetEndpoint.Parse("1.2.3.4:5"));
        foreach (var packet in new[] { new byte[] { 1, 2, 3 }, new byte[100], truncated, badFingerprint, response })
        {
            await client.SendAsync(packet, server);
        }
        await Task.Delay(300);
        Assert.Equal(0, client.Available);
        Assert.Equal(5, _rig.Host.Stun.Dropped);
        Assert.Equal(0, _rig.Host.Stun.Answered);
    }
}
