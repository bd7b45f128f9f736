using System.Globalization;
using System.Net;
using System.Text;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Routing;

namespace Mesh.WireGuard.Ipc;

/// <summary>What a UAPI set may change beyond the device itself: the socket.</summary>
public interface IUapiHost
{
    /// <summary>False when the port is taken.</summary>
    bool SetListenPort(int port);

    void SetFirewallMark(int mark);
}

/// <summary>
/// WireGuard's cross-platform configuration protocol (wireguard.com/xplatform): "get=1" dumps the
/// device, "set=1" applies key=value lines in order, as wireguard-go does. Errors are negative errno values.
/// </summary>
public sealed class UapiHandler(Device device, IUapiHost host)
{
    public const int EIO = 5;
    public const int EINVAL = 22;
    public const int EPROTO = 71;
    public const int EADDRINUSE = 98;

    public string Get()
    {
        var text = new StringBuilder();
        if (device.PrivateKey is { } key) text.Append("private_key=").Append(key.ToHex()).Append('\n');
        if (device.ListenPort != 0) text.Append("listen_port=").Append(device.ListenPort).Append('\n');
        if (device.FirewallMark != 0) text.Append("fwmark=").Append(device.FirewallMark).Append('\n');
        foreach (var peer in device.Peers)
        {
            text.Append("public_key=").Append(peer.PublicKey.ToHex()).Append('\n');
            text.Append("preshared_key=").Append(peer.PresharedKeyHex).Append('\n');
            text.Append("protocol_version=1\n");
            if (peer.Endpoint is { } endpoint) text.Append("endpoint=").Append(endpoint).Append('\n');
            var handshake = peer.LatestHandshake;
            var sinceEpoch = handshake is { } h ? h - DateTime.UnixEpoch : TimeSpan.Zero;
            text.Append("last_handshake_time_sec=").Append(sinceEpoch.Ticks / TimeSpan.TicksPerSecond).Append('\n');
            text.Append("last_handshake_time_nsec=").Append(sinceEpoch.Ticks % TimeSpan.TicksPerSecond * 100).Append('\n');
            text.Append("tx_bytes=").Append(peer.TxBytes).Append('\n');
            text.Append("rx_bytes=").Append(peer.RxBytes).Append('\n');
            text.Append("persistent_keepalive_interval=").Append((int)peer.PersistentKeepalive.TotalSeconds).Append('\n');
            foreach (var prefix in device.AllowedIps.PrefixesOf(peer)) text.Append("allowed_ip=").Append(prefix).Append('\n');
        }
        text.Append("errno=0\n\n");
        return text.ToString();
    }

    /// <summary>Applies the lines of one set operation; returns 0 or a negative errno (and stops at the first bad line).</summary>
    public int Set(IEnumerable<string> lines)
    {
        Peer? peer = null;
        var skipPeer = false;
        var created = false;
        foreach (var line in lines)
        {
            var equals = line.IndexOf('=');
            if (equals <= 0) return -EPROTO;
            var key = line[..equals];
            var value = line[(equals + 1)..];
            int error;
            if (key == "public_key")
            {
                PublicKey publicKey;
                try
                {
                    publicKey = PublicKey.ParseHex(value);
                }
                catch (FormatException)
                {
                    return -EINVAL;
                }
                skipPeer = device.PublicKey?.Equals(publicKey) == true;
                if (skipPeer)
                {
                    peer = null;
                    continue;
                }
                peer = device.FindPeer(publicKey);
                created = peer is null;
                peer ??= device.GetOrAddPeer(publicKey);
                continue;
            }
            if (peer is null && !skipPeer) error = SetDevice(key, value);
            else if (skipPeer) error = 0;
            else error = SetPeer(ref peer!, ref skipPeer, created, key, value);
            if (error != 0) return error;
        }
        return 0;
    }

    private int SetDevice(string key, string value)
    {
        switch (key)
        {
            case "private_key":
                try
                {
                    var privateKey = PrivateKey.ParseHex(value);
                    device.SetPrivateKey(privateKey.IsZero ? null : privateKey);
                    return 0;
                }
                catch (FormatException)
                {
                    return -EINVAL;
                }
            case "listen_port":
                if (!ushort.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var port)) return -EINVAL;
                return host.SetListenPort(port) ? 0 : -EADDRINUSE;
            case "fwmark":
                if (!uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var mark)) return -EINVAL;
                host.SetFirewallMark((int)mark);
                return 0;
            case "replace_peers":
                if (value != "true") return -EINVAL;
                device.RemoveAllPeers();
                return 0;
            default:
                return -EINVAL;
        }
    }

    private int SetPeer(ref Peer peer, ref bool skipPeer, bool created, string key, string value)
    {
        switch (key)
        {
            case "remove":
                if (value != "true") return -EINVAL;
                device.RemovePeer(peer.PublicKey);
                skipPeer = true;
                return 0;
            case "update_only":
                if (value != "true") return -EINVAL;
                if (created)
                {
                    device.RemovePeer(peer.PublicKey);
                    skipPeer = true;
                }
                return 0;
            case "preshared_key":
                try
                {
                    device.SetPresharedKey(peer, PresharedKey.ParseHex(value));
                    return 0;
                }
                catch (FormatException)
                {
                    return -EINVAL;
                }
            case "endpoint":
                if (!IPEndPoint.TryParse(value, out var endpoint) || endpoint.Port == 0) return -EINVAL;
                peer.Endpoint = new NetEndpoint(endpoint);
                return 0;
            case "persistent_keepalive_interval":
                if (!ushort.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)) return -EINVAL;
                device.SetPersistentKeepalive(peer, TimeSpan.FromSeconds(seconds));
                return 0;
            case "replace_allowed_ips":
                if (value != "true") return -EINVAL;
                device.AllowedIps.RemovePeer(peer);
                return 0;
            case "allowed_ip":
                if (!IpPrefix.TryParse(value, out var prefix, out _) || !value.Contains('/')) return -EINVAL;
                device.AllowedIps.Insert(prefix, peer);
                return 0;
            case "protocol_version":
                return value == "1" ? 0 : -EINVAL;
            default:
                return -EINVAL;
        }
    }
}
