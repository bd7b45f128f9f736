using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.WireGuard.Ipc;

/// <summary>Serves the UAPI on /var/run/wireguard/&lt;iface&gt;.sock (mode 0600), where `wg` looks for userspace interfaces.</summary>
public sealed class UapiServer : IDisposable
{
    public const string SocketDirectory = "/var/run/wireguard";

    private readonly Socket _listener;
    private readonly UapiHandler _handler;
    private readonly object _applyLock;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();

    private UapiServer(Socket listener, string path, UapiHandler handler, object applyLock, ILogger logger)
    {
        _listener = listener;
        Path = path;
        _handler = handler;
        _applyLock = applyLock;
        _logger = logger;
    }

    public string Path { get; }

    public static string SocketPath(string interfaceName, string directory = SocketDirectory) =>
        System.IO.Path.Combine(directory, interfaceName + ".sock");

    /// <param name="applyLock">Held while an operation runs, so configuration changes do not interleave.</param>
    public static UapiServer Start(string interfaceName, UapiHandler handler, object applyLock, ILogger? logger = null, string directory = SocketDirectory)
    {
        Directory.CreateDirectory(directory);
        var path = SocketPath(interfaceName, directory);
        if (File.Exists(path))
        {
            using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(path));
                throw new IOException($"{path} is in use: is {interfaceName} already running?");
            }
            catch (SocketException)
            {
                File.Delete(path);
            }
        }
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        listener.Listen(16);
        var server = new UapiServer(listener, path, handler, applyLock, logger ?? NullLogger.Instance);
        _ = server.AcceptLoopAsync();
        return server;
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _listener.Dispose();
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var stream = new NetworkStream(client, ownsSocket: true);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { NewLine = "\n", AutoFlush = false };
        try
        {
            while (await reader.ReadLineAsync(_stopping.Token).ConfigureAwait(false) is { } operation)
            {
                var lines = new List<string>();
                while (await reader.ReadLineAsync(_stopping.Token).ConfigureAwait(false) is { Length: > 0 } line) lines.Add(line);
                string response;
                lock (_applyLock)
                {
                    response = operation switch
                    {
                        "get=1" => _handler.Get(),
                        "set=1" => $"errno={_handler.Set(lines)}\n\n",
                        _ => $"errno={-UapiHandler.EPROTO}\n\n",
                    };
                }
                await writer.WriteAsync(response).ConfigureAwait(false);
                await writer.FlushAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
            _logger.LogDebug("UAPI client went away: {Message}", ex.Message);
        }
    }
}
