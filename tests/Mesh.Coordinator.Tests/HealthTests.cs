using System.Net;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Mesh.Coordinator.Hosting;
using Mesh.Transport;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Mesh.Coordinator.Tests;

public sealed class HealthTests : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), $"mesh-coord-{Guid.NewGuid():N}");
    private CoordinatorHost? _host;
    private GrpcChannel _channel = null!;
    private Grpc.Health.V1.Health.HealthClient _client = null!;

    public async Task InitializeAsync()
    {
        _host = await CoordinatorHost.StartAsync(new CoordinatorOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0), DataDir = _dataDir, StunPort = 0, RelayPort = 0 });
        _channel = GrpcChannels.ForAddress(_host.GrpcAddress, new HttpConnector(null), Timeout.InfiniteTimeSpan);
        _client = new Grpc.Health.V1.Health.HealthClient(_channel);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        if (_host is not null) await _host.DisposeAsync();
        Directory.Delete(_dataDir, recursive: true);
    }

    [Fact]
    public async Task EveryServedServiceIsServing()
    {
        foreach (var service in CoordinatorHost.HealthServices)
        {
            Assert.Equal(ServingStatus.Serving, (await _client.CheckAsync(new HealthCheckRequest { Service = service })).Status);
        }
    }

    [Fact]
    public async Task UnknownServiceIsNotFound()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await _client.CheckAsync(new HealthCheckRequest { Service = "no.such.Service" }));
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
    }

    [Fact]
    public async Task WatchSaysNotServingWhenTheCoordinatorStops()
    {
        using var watch = _client.Watch(new HealthCheckRequest());
        Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(ServingStatus.Serving, watch.ResponseStream.Current.Status);

        var stopping = _host!.DisposeAsync().AsTask();
        _host = null;
        var seen = new List<ServingStatus>();
        try
        {
            while (await watch.ResponseStream.MoveNext(CancellationToken.None)) seen.Add(watch.ResponseStream.Current.Status);
        }
        catch (RpcException)
        {
            // The server went away after its last word.
        }
        await stopping;
        Assert.Equal(ServingStatus.NotServing, Assert.Single(seen));
    }

    [Fact]
    public void DataDirectoryIsPrivate()
    {
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_dataDir));
    }
}

/// <summary>Stock gRPC (python3-grpcio) with nothing but server reflection to go on, against a real coordinator.</summary>
public sealed class ReflectionTests
{
    [Fact]
    public async Task StockClientListsTheServicesAndCallsThemWithDescriptorsFromTheServer()
    {
        await using var rig = await CoordinatorRig.StartAsync();
        var result = await Task.Run(() => Mesh.Transport.Echo.StockGrpc.RunReflectionClient($"{rig.Address.Host}:{rig.Address.Port}"));
        foreach (var listing in new[] { "services_v1alpha", "services_v1" })
        {
            var services = result.GetProperty(listing).EnumerateArray().Select(e => e.GetString()).ToList();
            Assert.Contains("mesh.v1.Coordinator", services);
            Assert.Contains("mesh.v1.Admin", services);
            Assert.Contains("grpc.health.v1.Health", services);
        }
        Assert.Equal("SERVING", result.GetProperty("health").GetString());
        Assert.Equal(32, result.GetProperty("coordinator_key_length").GetInt32());
    }
}
