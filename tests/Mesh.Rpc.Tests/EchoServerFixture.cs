using System.Net;
using Mesh.Rpc.Client;
using Mesh.Rpc.Echo;
using Mesh.Rpc.Server;

namespace Mesh.Rpc.Tests;

/// <summary>Our server with the echo service on a loopback port, and a channel to it.</summary>
public sealed class EchoServerFixture : IAsyncLifetime
{
    public EchoService Service { get; } = new();
    public GrpcServer Server { get; private set; } = null!;
    public Uri Address { get; private set; } = null!;
    public GrpcChannel Channel { get; private set; } = null!;
    public Echo.V1.Echo.EchoClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = new GrpcServer(new GrpcServerOptions { EnableDetailedErrors = true })
            .AddService(Echo.V1.Echo.BindService(Service))
            .Listen(new IPEndPoint(IPAddress.Loopback, 0));
        await Server.StartAsync();
        Address = Server.Addresses[0];
        Channel = GrpcChannel.ForAddress(Address);
        Client = new Echo.V1.Echo.EchoClient(Channel);
    }

    public async Task DisposeAsync()
    {
        Channel.Dispose();
        await Server.DisposeAsync();
    }
}
