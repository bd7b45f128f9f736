using Grpc.Net.Client;
using Mesh.Transport.Echo;

namespace Mesh.Transport.Tests;

/// <summary>The echo service on a production gRPC endpoint on loopback, and a production channel to it.</summary>
public sealed class EchoServerFixture : IAsyncLifetime
{
    public EchoHost Host { get; private set; } = null!;
    public EchoService Service => Host.Service;
    public Uri Address => Host.Address!;
    public GrpcChannel Channel { get; private set; } = null!;
    public Echo.V1.Echo.EchoClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Host = await EchoHost.StartTcpAsync(configure: options => options.EnableDetailedErrors = true);
        Channel = GrpcChannels.ForAddress(Address, new HttpConnector(null), TimeSpan.FromSeconds(15));
        Client = new Echo.V1.Echo.EchoClient(Channel);
    }

    public async Task DisposeAsync()
    {
        Channel.Dispose();
        await Host.DisposeAsync();
    }
}
