using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Routing;

namespace Mesh.WireGuard.Config;

/// <summary>A wg-quick configuration problem, with the place it was found: "wgm0.conf:7: Endpoint: ...".</summary>
public sealed class ConfigException(string message) : Exception(message);

public sealed record InterfaceAddress(IPAddress Address, int PrefixLength)
{
    public override string ToString() => $"{Address}/{PrefixLength}";
}

public sealed record PeerConfig
{
    public required PublicKey PublicKey { get; init; }
    public PresharedKey? PresharedKey { get; init; }
    public IReadOnlyList<IPNetwork> AllowedIps { get; init; } = [];
    public string? EndpointHost { get; init; }
    public int EndpointPort { get; init; }
    public int EndpointLine { get; init; }
    public TimeSpan PersistentKeepalive { get; init; }
}

/// <summary>An ordinary wg-quick file ([Interface] and [Peer] sections), parsed and checked as a whole.</summary>
public sealed record WgQuickConfig
{
    public required PrivateKey PrivateKey { get; init; }
    public IReadOnlyList<InterfaceAddress> Addresses { get; init; } = [];
    public int? ListenPort { get; init; }
    public int Mtu { get; init; } = Core.ProtocolConstants.DefaultMtu;
    public IReadOnlyList<IPAddress> DnsServers { get; init; } = [];
    public IReadOnlyList<string> DnsSearch { get; init; } = [];

    /// <summary>"auto" (the default), "off", or a routing table number or name.</summary>
    public string Table { get; init; } = "auto";
    public int FirewallMark { get; init; }
    public IReadOnlyList<string> PreUp { get; init; } = [];
    public IReadOnlyList<string> PostUp { get; init; } = [];
    public IReadOnlyList<string> PreDown { get; init; } = [];
    public IReadOnlyList<string> PostDown { get; init; } = [];
    public IReadOnlyList<PeerConfig> Peers { get; init; } = [];

    public static WgQuickConfig Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot read: {ex.Message}");
        }
        return Parse(text, Path.GetFileName(path));
    }

    public static WgQuickConfig Parse(string text, string source = "config")
    {
        var parser = new Parser(source);
        return parser.Parse(text);
    }

    /// <summary>The interface name wg-quick derives from the file name: wgm0.conf gives wgm0.</summary>
    public static string InterfaceNameFor(string path)
    {
        var name = Path.GetFileNameWithoutExtension(path);
        if (name.Length is 0 or > 15 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '=' or '+' or '.' or '-'))
        {
            throw new ConfigException($"{path}: the interface name \"{name}\" (from the file name) must be 1-15 characters of letters, digits and _=+.-");
        }
        return name;
    }

    private sealed class Parser(string source)
    {
        private PrivateKey? _privateKey;
        private readonly List<InterfaceAddress> _addresses = new();
        private int? _listenPort;
        private int _mtu = Core.ProtocolConstants.DefaultMtu;
        private readonly List<IPAddress> _dns = new();
        private readonly List<string> _search = new();
        private string _table = "auto";
        private int _fwmark;
        private readonly List<string> _preUp = new(), _postUp = new(), _preDown = new(), _postDown = new();
        private readonly List<PeerConfig> _peers = new();
        private PeerBuilder? _peer;
        private int _line;
        private string _key = "";

        public WgQuickConfig Parse(string text)
        {
            string? section = null;
            var sawInterface = false;
            foreach (var rawLine in text.Split('\n'))
            {
                _line++;
                _key = "";
                var hash = rawLine.IndexOf('#');
                var line = (hash >= 0 ? rawLine[..hash] : rawLine).Trim();
                if (line.Length == 0) continue;
                if (line.StartsWith('['))
                {
                    FinishPeer();
                    section = line.ToLowerInvariant() switch
                    {
                        "[interface]" => "interface",
                        "[peer]" => "peer",
                        _ => throw Error($"unknown section {line}; expected [Interface] or [Peer]"),
                    };
                    if (section == "interface")
                    {
                        if (sawInterface) throw Error("a second [Interface] section");
                        sawInterface = true;
                    }
                    else
                    {
                        _peer = new PeerBuilder { Line = _line };
                    }
                    continue;
                }
                var equals = line.IndexOf('=');
                if (equals <= 0) throw Error($"\"{line}\" is not Key = Value");
                _key = line[..equals].Trim();
                var value = line[(equals + 1)..].Trim();
                switch (section)
                {
                    case "interface":
                        InterfaceKey(_key.ToLowerInvariant(), value);
                        break;
                    case "peer":
                        PeerKey(_key.ToLowerInvariant(), value);
                        break;
                    default:
                        throw Error("a key before any [Interface] or [Peer] section");
                }
            }
            FinishPeer();
            _key = "";
            if (!sawInterface) throw new ConfigException($"{source}: there is no [Interface] section");
            if (_privateKey is null) throw new ConfigException($"{source}: [Interface] has no PrivateKey");
            return new WgQuickConfig
            {
                PrivateKey = _privateKey,
                Addresses = _addresses,
                ListenPort = _listenPort,
                Mtu = _mtu,
                DnsServers = _dns,
                DnsSearch = _search,
                Table = _table,
                FirewallMark = _fwmark,
                PreUp = _preUp,
                PostUp = _postUp,
                PreDown = _preDown,
                PostDown = _postDown,
                Peers = _peers,
            };
        }

        private void InterfaceKey(string key, string value)
        {
            switch (key)
            {
                case "privatekey":
                    _privateKey = Wrap(() => PrivateKey.Parse(value));
                    break;
                case "address":
                    foreach (var item in List(value)) _addresses.Add(ParseAddress(item));
                    break;
                case "listenport":
                    _listenPort = Number(value, 0, 65535);
                    break;
                case "mtu":
                    _mtu = Number(value, 576, 65535);
                    break;
                case "dns":
                    foreach (var item in List(value))
                    {
                        if (IPAddress.TryParse(item, out var server)) _dns.Add(server);
                        else _search.Add(item);
                    }
                    break;
                case "table":
                    if (value.Length == 0 || value.Any(char.IsWhiteSpace)) throw Error($"\"{value}\" is not off, auto, or a routing table");
                    _table = value;
                    break;
                case "fwmark":
                    _fwmark = value.Equals("off", StringComparison.OrdinalIgnoreCase) ? 0
                        : value.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && int.TryParse(value.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var hex) ? hex
                        : Number(value, 0, int.MaxValue);
                    break;
                case "preup": _preUp.Add(value); break;
                case "postup": _postUp.Add(value); break;
                case "predown": _preDown.Add(value); break;
                case "postdown": _postDown.Add(value); break;
                case "saveconfig":
                    if (!value.Equals("false", StringComparison.OrdinalIgnoreCase)) throw Error("SaveConfig is not supported; set it to false or remove it");
                    break;
                default:
                    throw Error("is not a key of [Interface]");
            }
        }

        private void PeerKey(string key, string value)
        {
            var peer = _peer!;
            switch (key)
            {
                case "publickey":
                    peer.PublicKey = Wrap(() => PublicKey.Parse(value));
                    break;
                case "presharedkey":
                    peer.PresharedKey = Wrap(() => PresharedKey.Parse(value));
                    break;
                case "allowedips":
                    foreach (var item in List(value))
                    {
                        if (!IpPrefix.TryParse(item, out var prefix, out var error)) throw Error(error);
                        peer.AllowedIps.Add(prefix);
                    }
                    break;
                case "endpoint":
                    (peer.EndpointHost, peer.EndpointPort) = ParseEndpoint(value);
                    peer.EndpointLine = _line;
                    break;
                case "persistentkeepalive":
                    peer.PersistentKeepalive = value.Equals("off", StringComparison.OrdinalIgnoreCase) ? 0 : Number(value, 0, 65535);
                    break;
                default:
                    throw Error("is not a key of [Peer]");
            }
        }

        private void FinishPeer()
        {
            if (_peer is null) return;
            var peer = _peer;
            _peer = null;
            if (peer.PublicKey is null) throw new ConfigException($"{source}:{peer.Line}: [Peer] has no PublicKey");
            if (_peers.Any(p => p.PublicKey.Equals(peer.PublicKey))) throw new ConfigException($"{source}:{peer.Line}: [Peer] {peer.PublicKey} appears twice");
            _peers.Add(new PeerConfig
            {
                PublicKey = peer.PublicKey,
                PresharedKey = peer.PresharedKey,
                AllowedIps = peer.AllowedIps,
                EndpointHost = peer.EndpointHost,
                EndpointPort = peer.EndpointPort,
                EndpointLine = peer.EndpointLine,
                PersistentKeepalive = TimeSpan.FromSeconds(peer.PersistentKeepalive),
            });
        }

        private InterfaceAddress ParseAddress(string item)
        {
            var slash = item.IndexOf('/');
            var addressText = slash < 0 ? item : item[..slash];
            if (!IPAddress.TryParse(addressText, out var address)) throw Error($"\"{item}\" is not an address like 10.0.0.1/24");
            var max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
            var length = max;
            if (slash >= 0 && (!int.TryParse(item.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > max))
            {
                throw Error($"\"{item}\" has a prefix length outside 0-{max}");
            }
            return new InterfaceAddress(address, length);
        }

        private (string Host, int Port) ParseEndpoint(string value)
        {
            var colon = value.LastIndexOf(':');
            if (colon <= 0) throw Error($"\"{value}\" is not HOST:PORT");
            var host = value[..colon];
            if (host.StartsWith('['))
            {
                if (!host.EndsWith(']')) throw Error($"\"{value}\" is not [IPv6]:PORT");
                host = host[1..^1];
            }
            else if (host.Contains(':'))
            {
                throw Error($"\"{value}\": write IPv6 endpoints as [address]:port");
            }
            if (!int.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                throw Error($"\"{value}\" has no port between 1 and 65535");
            }
            return (host, port);
        }

        private int Number(string value, int min, int max)
        {
            if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number < min || number > max)
            {
                throw Error($"\"{value}\" is not a number from {min} to {max}");
            }
            return number;
        }

        private static IEnumerable<string> List(string value) =>
            value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

        private T Wrap<T>(Func<T> parse)
        {
            try
            {
                return parse();
            }
            catch (FormatException ex)
            {
                throw Error(ex.Message.TrimEnd('.'));
            }
        }

        private ConfigException Error(string message) =>
            new(_key.Length == 0 ? $"{source}:{_line}: {message}" : $"{source}:{_line}: {_key}: {message}");

        private sealed class PeerBuilder
        {
            public int Line;
            public PublicKey? PublicKey;
            public PresharedKey? PresharedKey;
            public List<IPNetwork> AllowedIps { get; } = new();
            public string? EndpointHost;
            public int EndpointPort;
            public int EndpointLine;
            public int PersistentKeepalive;
        }
    }
}
