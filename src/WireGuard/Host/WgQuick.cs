using System.Net;
using System.Net.Sockets;
using Mesh.WireGuard.Config;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Ipc;
using Mesh.WireGuard.Tun;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.WireGuard.Host;

/// <summary>
/// Brings a wg-quick configuration up and down the way wg-quick does (its interface, addresses, MTU,
/// routes for AllowedIPs including the full-tunnel policy rules, DNS, and the hooks), running our own
/// WireGuard implementation instead of the kernel's. Everything is checked first; a failure midway undoes what was done.
/// </summary>
public sealed class WgQuick : IDisposable
{
    private const int DefaultTable = 51820;

    private readonly WgQuickConfig _config;
    private readonly ILogger _logger;
    private readonly List<Action> _undo = new();
    private readonly object _configLock = new();
    private InterfaceHost? _host;
    private UapiServer? _uapi;
    private bool _down;

    private WgQuick(string name, WgQuickConfig config, ILogger logger)
    {
        Name = name;
        _config = config;
        _logger = logger;
    }

    public string Name { get; }
    public InterfaceHost Host => _host ?? throw new InvalidOperationException("The interface is not up.");

    /// <summary>Checks and resolves everything that can fail before touching the system; throws ConfigException with the place at fault.</summary>
    public static IReadOnlyList<(PeerConfig Peer, IPEndPoint? Endpoint)> Resolve(WgQuickConfig config, string source)
    {
        var resolved = new List<(PeerConfig, IPEndPoint?)>();
        foreach (var peer in config.Peers)
        {
            if (peer.EndpointHost is null)
            {
                resolved.Add((peer, null));
                continue;
            }
            if (!IPAddress.TryParse(peer.EndpointHost, out var address))
            {
                try
                {
                    var addresses = Dns.GetHostAddresses(peer.EndpointHost);
                    address = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault();
                }
                catch (SocketException ex)
                {
                    throw new ConfigException($"{source}:{peer.EndpointLine}: Endpoint: cannot resolve \"{peer.EndpointHost}\": {ex.Message}");
                }
                if (address is null) throw new ConfigException($"{source}:{peer.EndpointLine}: Endpoint: \"{peer.EndpointHost}\" has no address");
            }
            resolved.Add((peer, new IPEndPoint(address, peer.EndpointPort)));
        }
        if ((config.DnsServers.Count > 0 || config.DnsSearch.Count > 0) && !Shell.Exists("resolvconf"))
        {
            throw new ConfigException($"{source}: DNS is set but resolvconf is not installed (apt-get install openresolv), as wg-quick needs too");
        }
        return resolved;
    }

    public static WgQuick Up(string name, WgQuickConfig config, string source, ILogger? logger = null, string uapiDirectory = UapiServer.SocketDirectory)
    {
        var endpoints = Resolve(config, source);
        if (Directory.Exists($"/sys/class/net/{name}")) throw new ConfigException($"{name} already exists");
        var quick = new WgQuick(name, config, logger ?? NullLogger.Instance);
        try
        {
            quick.BringUp(endpoints, uapiDirectory);
            return quick;
        }
        catch
        {
            quick.Undo();
            throw;
        }
    }

    /// <summary>Runs PreDown, removes routes, rules, DNS and the interface, then PostDown. Safe to call twice.</summary>
    public void Dispose()
    {
        lock (_configLock)
        {
            if (_down) return;
            _down = true;
        }
        foreach (var hook in _config.PreDown) RunHookLogged(hook);
        Undo();
        foreach (var hook in _config.PostDown) RunHookLogged(hook);
    }

    private void BringUp(IReadOnlyList<(PeerConfig Peer, IPEndPoint? Endpoint)> endpoints, string uapiDirectory)
    {
        foreach (var hook in _config.PreUp) Shell.Hook(hook, Name);

        var tun = TunDevice.Create(Name);
        _host = new InterfaceHost(tun, _config.ListenPort ?? 0, _logger, new DeviceOptions { Mtu = _config.Mtu }, CryptoPipeline.DefaultWorkers());
        _undo.Add(() => _host.Dispose());
        var device = _host.Device;
        device.SetPrivateKey(_config.PrivateKey);
        foreach (var (peerConfig, endpoint) in endpoints)
        {
            var peer = device.GetOrAddPeer(peerConfig.PublicKey);
            device.SetPresharedKey(peer, peerConfig.PresharedKey);
            if (endpoint is not null) peer.Endpoint = new NetEndpoint(endpoint);
            device.SetAllowedIps(peer, peerConfig.AllowedIps, replace: true);
        }
        if (_config.FirewallMark != 0) _host.SetFirewallMark(_config.FirewallMark);
        _host.Start();

        _uapi = UapiServer.Start(Name, new UapiHandler(device, _host), _configLock, _logger, uapiDirectory);
        _undo.Add(() => _uapi.Dispose());

        Shell.Run("ip", "link", "set", "dev", Name, "mtu", _config.Mtu.ToString(), "up");
        foreach (var address in _config.Addresses) Shell.Run("ip", Family(address.Address), "address", "add", address.ToString(), "dev", Name);
        if (_config.DnsServers.Count > 0 || _config.DnsSearch.Count > 0) SetDns();
        AddRoutes();

        // Keepalives start once the interface is up, as wg-quick's `wg setconf` does on a running interface.
        foreach (var (peerConfig, _) in endpoints)
        {
            if (peerConfig.PersistentKeepalive > TimeSpan.Zero) device.SetPersistentKeepalive(device.FindPeer(peerConfig.PublicKey)!, peerConfig.PersistentKeepalive);
        }
        foreach (var hook in _config.PostUp) Shell.Hook(hook, Name);
        _logger.LogInformation("{Name} is up: listening on UDP {Port}, {Peers} peers.", Name, device.ListenPort, endpoints.Count);
    }

    private void AddRoutes()
    {
        if (_config.Table.Equals("off", StringComparison.OrdinalIgnoreCase)) return;
        var prefixes = _config.Peers.SelectMany(p => p.AllowedIps).OrderByDescending(p => p.PrefixLength).ToList();
        foreach (var prefix in prefixes)
        {
            var family = Family(prefix.BaseAddress);
            if (prefix.PrefixLength == 0 && _config.Table.Equals("auto", StringComparison.OrdinalIgnoreCase))
            {
                AddDefaultRoute(family, prefix);
            }
            else if (!_config.Table.Equals("auto", StringComparison.OrdinalIgnoreCase))
            {
                Shell.Run("ip", family, "route", "add", prefix.ToString(), "dev", Name, "table", _config.Table);
            }
            else if (string.IsNullOrWhiteSpace(Shell.Run("ip", family, "route", "show", "dev", Name, "match", prefix.ToString())))
            {
                Shell.Run("ip", family, "route", "add", prefix.ToString(), "dev", Name);
            }
        }
    }

    /// <summary>wg-quick's full tunnel: the default route in a table of its own, used by everything not marked as the tunnel's own traffic.</summary>
    private void AddDefaultRoute(string family, IPNetwork prefix)
    {
        var table = _host!.Device.FirewallMark != 0 ? _host.Device.FirewallMark : FreeTable();
        if (_host.Device.FirewallMark == 0) _host.SetFirewallMark(table);
        var tableText = table.ToString();
        Shell.Run("ip", family, "route", "add", prefix.ToString(), "dev", Name, "table", tableText);
        Shell.Run("ip", family, "rule", "add", "not", "fwmark", tableText, "table", tableText);
        _undo.Add(() => Shell.Run("ip", family, "rule", "delete", "table", tableText));
        Shell.Run("ip", family, "rule", "add", "table", "main", "suppress_prefixlength", "0");
        _undo.Add(() => Shell.Run("ip", family, "rule", "delete", "table", "main", "suppress_prefixlength", "0"));
        if (family == "-4") Shell.Run("sysctl", "-q", "net.ipv4.conf.all.src_valid_mark=1");
    }

    private static int FreeTable()
    {
        for (var table = DefaultTable; ; table++)
        {
            if (string.IsNullOrWhiteSpace(Shell.Run("ip", "-4", "route", "show", "table", table.ToString()))
                && string.IsNullOrWhiteSpace(Shell.Run("ip", "-6", "route", "show", "table", table.ToString()))) return table;
        }
    }

    private void SetDns()
    {
        var lines = string.Concat(_config.DnsServers.Select(s => $"nameserver {s}\n"));
        if (_config.DnsSearch.Count > 0) lines += $"search {string.Join(' ', _config.DnsSearch)}\n";
        Shell.Run("resolvconf", ["-a", $"tun.{Name}", "-m", "0", "-x"], lines);
        _undo.Add(() => Shell.Run("resolvconf", "-d", $"tun.{Name}", "-f"));
    }

    private void Undo()
    {
        for (var i = _undo.Count - 1; i >= 0; i--)
        {
            try
            {
                _undo[i]();
            }
            catch (Exception ex) when (ex is InvalidOperationException or IOException)
            {
                _logger.LogWarning("While taking {Name} down: {Message}", Name, ex.Message);
            }
        }
        _undo.Clear();
    }

    private void RunHookLogged(string hook)
    {
        try
        {
            Shell.Hook(hook, Name);
        }
        catch (InvalidOperationException ex)
        {
            _logger.LogWarning("{Message}", ex.Message);
        }
    }

    private static string Family(IPAddress address) => address.AddressFamily == AddressFamily.InterNetwork ? "-4" : "-6";
}
