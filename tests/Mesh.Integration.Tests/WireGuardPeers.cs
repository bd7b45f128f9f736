using System.Diagnostics;
using Mesh.WireGuard.Keys;

namespace Mesh.Integration.Tests;

/// <summary>One end of a tunnel in a namespace: our agent or the stock wireguard-go.</summary>
public abstract class WireGuardPeer(NetworkLab lab, string ns, string interfaceName)
{
    public NetworkLab Lab { get; } = lab;
    public string Namespace { get; } = ns;
    public string Interface { get; } = interfaceName;
    public PrivateKey Key { get; } = PrivateKey.Generate();
    public PublicKey PublicKey => Key.PublicKey;

    public abstract void Up(string tunnelCidr, int listenPort, WireGuardPeer peer, string peerTunnelIp, string? peerEndpoint, int keepalive = 0);

    public string Exec(params string[] command) => Lab.Exec(Namespace, command);

    public bool Ping(string address, int count = 3) =>
        Lab.TryExec(Namespace, out _, "ping", "-c", count.ToString(), "-i", "0.2", "-W", "2", address) == 0;

    /// <summary>`wg show IFACE dump`: the peer line split into its fields.</summary>
    public string[] DumpPeer()
    {
        var lines = Exec("wg", "show", Interface, "dump").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return lines[1].Split('\t');
    }

    /// <summary>The UAPI socket answers: the interface's daemon is up (a leftover socket file does not count).</summary>
    protected bool UapiAnswers()
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        try
        {
            socket.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint($"/var/run/wireguard/{Interface}.sock"));
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    protected static void WaitFor(Func<bool> condition, TimeSpan timeout, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > timeout) throw new TimeoutException($"{what} within {timeout.TotalSeconds:F0} s");
            Thread.Sleep(50);
        }
    }
}

/// <summary>Our mesh-agent in wg-quick mode, in the foreground as a test child.</summary>
public sealed class AgentPeer(NetworkLab lab, string ns, string interfaceName, int? cryptoWorkers = null) : WireGuardPeer(lab, ns, interfaceName)
{
    public static string AgentDll => Binaries.Agent;

    public Process? Process { get; private set; }

    public string ConfigFor(string tunnelCidr, int listenPort, WireGuardPeer peer, string peerTunnelIp, string? peerEndpoint, int keepalive) =>
        $"""
        [Interface]
        PrivateKey = {Key.ToBase64()}
        Address = {tunnelCidr}
        ListenPort = {listenPort}

        [Peer]
        PublicKey = {peer.PublicKey.ToBase64()}
        AllowedIPs = {peerTunnelIp}/32
        {(peerEndpoint is null ? "" : $"Endpoint = {peerEndpoint}")}
        {(keepalive > 0 ? $"PersistentKeepalive = {keepalive}" : "")}
        """;

    public override void Up(string tunnelCidr, int listenPort, WireGuardPeer peer, string peerTunnelIp, string? peerEndpoint, int keepalive = 0)
    {
        var config = Lab.WriteFile(Interface + ".conf", ConfigFor(tunnelCidr, listenPort, peer, peerTunnelIp, peerEndpoint, keepalive));
        var path = Path.Combine(Path.GetDirectoryName(config)!, Interface + ".conf");
        File.Move(config, path, overwrite: true);
        var environment = cryptoWorkers is { } workers ? new Dictionary<string, string> { ["MESH_CRYPTO_WORKERS"] = workers.ToString() } : null;
        Process = Lab.Start(Namespace, environment, "dotnet", AgentDll, "wg", "up", path, "--foreground");
        // The pid file appears once addresses and routes are in place too, not just the UAPI socket.
        var pidFile = $"/var/run/wireguard/{Interface}.pid";
        WaitFor(() => (File.Exists(pidFile) && UapiAnswers()) || Process.HasExited, TimeSpan.FromSeconds(20), $"{Interface} up");
        if (Process.HasExited) throw new InvalidOperationException($"mesh-agent exited: {Process.StandardError.ReadToEnd()}");
        File.Delete(path);
    }
}

/// <summary>Debian's wireguard-go, configured with `wg set` as the stock peer.</summary>
public sealed class WireGuardGoPeer(NetworkLab lab, string ns, string interfaceName) : WireGuardPeer(lab, ns, interfaceName)
{
    public override void Up(string tunnelCidr, int listenPort, WireGuardPeer peer, string peerTunnelIp, string? peerEndpoint, int keepalive = 0)
    {
        var process = Lab.Start(Namespace, new Dictionary<string, string> { ["WG_PROCESS_FOREGROUND"] = "1" }, "wireguard-go", Interface);
        WaitFor(() => UapiAnswers() || process.HasExited, TimeSpan.FromSeconds(20), $"wireguard-go {Interface} up");
        var keyFile = Lab.WriteFile(Interface + ".key", Key.ToBase64());
        var args = new List<string> { "wg", "set", Interface, "private-key", keyFile, "listen-port", listenPort.ToString(), "peer", peer.PublicKey.ToBase64(), "allowed-ips", peerTunnelIp + "/32" };
        if (peerEndpoint is not null) args.AddRange(["endpoint", peerEndpoint]);
        if (keepalive > 0) args.AddRange(["persistent-keepalive", keepalive.ToString()]);
        Exec([.. args]);
        Exec("ip", "address", "add", tunnelCidr, "dev", Interface);
        Exec("ip", "link", "set", Interface, "mtu", "1420", "up");
    }
}
