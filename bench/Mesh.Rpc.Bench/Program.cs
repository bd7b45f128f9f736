using System.Diagnostics;
using System.Globalization;
using Mesh.Transport;
using Mesh.Transport.Echo;
using Mesh.Transport.Echo.V1;

// Unary calls/s and streamed messages/s on loopback, for every pairing of the official .NET stack as Mesh
// runs it (Grpc.AspNetCore on Kestrel, Grpc.Net.Client: "dotnet") and stock gRPC (python3-grpcio: "stock"),
// all measured in this one run so the ratios compare like with like.
var seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 5;
var concurrency = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 32;

await using var ourServer = await EchoHost.StartTcpAsync();
using var stockServer = new StockEchoServer();
var ours = ourServer.Address!;
var stock = new Uri(stockServer.Address);

Console.WriteLine($"gRPC on loopback: {seconds} s per figure, {concurrency} concurrent unary callers, {Environment.ProcessorCount} cores");
var rows = new List<(string Pair, double Unary, double Stream)>
{
    ("dotnet -> dotnet", await OurUnaryRate(ours), await OurStreamRate(ours)),
};
var stockStock = StockGrpc.RunBenchClient($"{stock.Host}:{stock.Port}", seconds, concurrency);
rows.Add(("stock  -> stock ", stockStock.UnaryPerSecond, stockStock.StreamedPerSecond));
var stockOurs = StockGrpc.RunBenchClient($"{ours.Host}:{ours.Port}", seconds, concurrency);
rows.Add(("stock  -> dotnet", stockOurs.UnaryPerSecond, stockOurs.StreamedPerSecond));
rows.Add(("dotnet -> stock ", await OurUnaryRate(stock), await OurStreamRate(stock)));

Console.WriteLine();
Console.WriteLine("client -> server    unary calls/s   streamed msgs/s");
foreach (var (pair, unary, stream) in rows) Console.WriteLine($"{pair}   {unary,13:N0}   {stream,15:N0}");
Console.WriteLine();
Console.WriteLine($"ratio dotnet->dotnet / stock->stock: unary {rows[0].Unary / rows[1].Unary:F2}x, streaming {rows[0].Stream / rows[1].Stream:F2}x");
Console.WriteLine($"ratio stock->dotnet / stock->stock (the .NET server under the stock client): unary {rows[2].Unary / rows[1].Unary:F2}x, streaming {rows[2].Stream / rows[1].Stream:F2}x");
return 0;

async Task<double> OurUnaryRate(Uri server)
{
    using var channel = GrpcChannels.ForAddress(server, new HttpConnector(null), Timeout.InfiniteTimeSpan);
    var client = new Echo.EchoClient(channel);
    var request = new EchoRequest { Message = "bench" };
    await Measure(1);
    return await Measure(seconds);

    async Task<double> Measure(double duration)
    {
        var count = 0L;
        var watch = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(duration);
        var workers = Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (watch.Elapsed < end)
            {
                await client.UnaryAsync(request);
                Interlocked.Increment(ref count);
            }
        });
        await Task.WhenAll(workers);
        return count / watch.Elapsed.TotalSeconds;
    }
}

async Task<double> OurStreamRate(Uri server)
{
    using var channel = GrpcChannels.ForAddress(server, new HttpConnector(null), Timeout.InfiniteTimeSpan);
    var client = new Echo.EchoClient(channel);
    await Measure(0.5);
    return await Measure(seconds);

    async Task<double> Measure(double duration)
    {
        using var call = client.ServerStream(new EchoRequest { Message = "bench", Repeat = int.MaxValue });
        var count = 0L;
        var watch = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(duration);
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            if (++count % 256 == 0 && watch.Elapsed >= end) break;
        }
        return count / watch.Elapsed.TotalSeconds;
    }
}
