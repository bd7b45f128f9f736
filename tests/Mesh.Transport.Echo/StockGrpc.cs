using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;

namespace Mesh.Transport.Echo;

/// <summary>
/// Stock gRPC (Debian's python3-grpcio under /usr/bin/python3) running the echo service scripts in interop/.
/// The scripts build their messages from echo.proto's descriptor, which this class exports.
/// </summary>
public static class StockGrpc
{
    public const string Python = "/usr/bin/python3";

    private static readonly Lazy<string> Descriptor = new(() =>
    {
        var path = Path.Combine(Path.GetTempPath(), $"mesh-echo-{Environment.ProcessId}.desc");
        File.WriteAllBytes(path, V1.EchoReflection.Descriptor.SerializedData.ToByteArray());
        return path;
    });

    private static string Script(string name) => Path.Combine(AppContext.BaseDirectory, "interop", name);

    public static ProcessStartInfo StartInfo(string script, params string[] args)
    {
        if (!File.Exists(Python) || Run(Python, "-c", "import grpc") != 0)
        {
            throw new InvalidOperationException("Stock gRPC is missing: /usr/bin/python3 cannot import grpc. Install python3-grpcio (scripts/test does).");
        }
        var info = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        info.ArgumentList.Add(Script(script));
        foreach (var arg in args) info.ArgumentList.Add(arg);
        info.ArgumentList.Add(Descriptor.Value);
        info.Environment["PYTHONDONTWRITEBYTECODE"] = "1";
        return info;
    }

    /// <summary>Runs the stock client's cases against a server; one result per case name.</summary>
    public static Dictionary<string, JsonElement> RunClient(string target)
    {
        using var process = Process.Start(StartInfo("echo_client.py", target))!;
        process.StandardInput.Close();
        var stderr = process.StandardError.ReadToEndAsync();
        var results = new Dictionary<string, JsonElement>();
        while (process.StandardOutput.ReadLine() is { } line)
        {
            var json = JsonDocument.Parse(line).RootElement.Clone();
            results[json.GetProperty("case").GetString()!] = json;
        }
        if (!process.WaitForExit(120_000)) process.Kill(entireProcessTree: true);
        if (process.ExitCode != 0) throw new InvalidOperationException($"echo_client.py failed ({process.ExitCode}): {stderr.Result}");
        return results;
    }

    /// <summary>
    /// The stock reflection client against a server: what it listed (v1alpha and v1) and what it called with
    /// descriptors the server gave it.
    /// </summary>
    public static JsonElement RunReflectionClient(string target)
    {
        var alpha = WriteDescriptor("reflection-v1alpha", Grpc.Reflection.V1Alpha.ReflectionReflection.Descriptor);
        var v1 = WriteDescriptor("reflection-v1", Grpc.Reflection.V1.ReflectionReflection.Descriptor);
        var info = StartInfo("reflection_client.py", target, alpha);
        // StartInfo appends the echo descriptor; this script takes the v1 reflection descriptor there instead.
        info.ArgumentList[^1] = v1;
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stderr = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(60_000)) process.Kill(entireProcessTree: true);
        if (process.ExitCode != 0) throw new InvalidOperationException($"reflection_client.py failed ({process.ExitCode}): {stderr.Result}");
        return JsonDocument.Parse(output).RootElement.Clone();
    }

    private static string WriteDescriptor(string name, Google.Protobuf.Reflection.FileDescriptor descriptor)
    {
        var path = Path.Combine(Path.GetTempPath(), $"mesh-{name}-{Environment.ProcessId}.desc");
        File.WriteAllBytes(path, descriptor.SerializedData.ToByteArray());
        return path;
    }

    /// <summary>Stock client load against a server: unary calls and streamed messages per second.</summary>
    public static (double UnaryPerSecond, double StreamedPerSecond) RunBenchClient(string target, double seconds, int concurrency)
    {
        using var process = Process.Start(StartInfo("bench_client.py", target, seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), concurrency.ToString(System.Globalization.CultureInfo.InvariantCulture)))!;
        process.StandardInput.Close();
        var stderr = process.StandardError.ReadToEndAsync();
        var rates = new Dictionary<string, double>();
        while (process.StandardOutput.ReadLine() is { } line)
        {
            var parts = line.Split(' ');
            rates[parts[0]] = double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"bench_client.py failed ({process.ExitCode}): {stderr.Result}");
        return (rates["unary"], rates["stream"]);
    }

    private static int Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        process.WaitForExit();
        return process.ExitCode;
    }
}

/// <summary>The stock echo server, alive for one test class.</summary>
public sealed class StockEchoServer : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _events = new();

    public StockEchoServer()
    {
        _process = Process.Start(StockGrpc.StartInfo("echo_server.py"))!;
        var first = _process.StandardOutput.ReadLine();
        if (first is null || !first.StartsWith("PORT ", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"echo_server.py did not start: {first} {_process.StandardError.ReadToEnd()}");
        }
        Address = $"http://127.0.0.1:{first[5..]}";
        _ = Task.Run(() =>
        {
            while (_process.StandardOutput.ReadLine() is { } line) _events.Enqueue(line);
        });
    }

    public string Address { get; }

    public async Task<bool> WaitForEventAsync(string expected, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < until)
        {
            if (_events.Contains(expected)) return true;
            await Task.Delay(20);
        }
        return false;
    }

    public void Dispose()
    {
        try
        {
            _process.StandardInput.Close();
            if (!_process.WaitForExit(5000)) _process.Kill(entireProcessTree: true);
        }
        finally
        {
            _process.Dispose();
        }
    }
}
