using System.Net;
using Grpc.Core;
using Grpc.Health.V1;
using Mesh.Coordinator.Hosting;
using Mesh.Rpc.Client;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Mesh.Coordinator.Tests;

public sealed class HealthTests : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), $"mesh-coord-{Guid.NewGuid():N}");
    private CoordinatorHost _host = null!;
    private GrpcChannel _channel = null!;
    private Grpc.Health.V1.Health.HealthClient _client = null!;

    public async Task InitializeAsync()
    {
        _host = await CoordinatorHost.StartAsync(new CoordinatorOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0), DataDir = _dataDir, RelayPort = 0 });
        _channel = GrpcChannel.ForAddress(_host.GrpcAddress);
        _client = new Grpc.Health.V1.Health.HealthClient(_channel);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _host.DisposeAsync();
        Directory.Delete(_dataDir, recursive: true);
    }

    [Fact]
    public async Task ServerAsAWholeIsServing()
    {
        Assert.Equal(ServingStatus.Serving, (await _client.CheckAsync(new HealthCheckRequest())).Status);
        Assert.Equal(ServingStatus.Serving, (await _client.CheckAsync(new HealthCheckRequest { Service = "grpc.health.v1.Health" })).Status);
    }

    [Fact]
    public async Task UnknownServiceIsNotFound()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await _client.CheckAsync(new HealthCheckRequest { Service = "no.such.Service" }));
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
    }

    [Fact]
    public async Task WatchStreamsChanges()
    {
        using var watch = _client.Watch(new HealthCheckRequest { Service = "mesh.test.Later" });
        Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(ServingStatus.ServiceUnknown, watch.ResponseStream.Current.Status);

        _host.Health.SetStatus("mesh.test.Later", ServingStatus.Serving);
        Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(ServingStatus.Serving, watch.ResponseStream.Current.Status);

        _host.Health.SetStatus("mesh.test.Later", ServingStatus.NotServing);
        Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(ServingStatus.NotServing, watch.ResponseStream.Current.Status);
    }

    [Fact]
    public void DataDirectoryIsPrivate()
    {
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_dataDir));
    }
}
