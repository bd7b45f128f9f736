using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Mesh.WireGuard.Host;

namespace Mesh.Agent.Daemon;

/// <summary>An address the agent does not offer peers, and why.</summary>
public sealed record SkippedAddress(string Interface, IPAddress Address, string Reason);

/// <summary>The host's addresses that peers may try (<see cref="Candidates"/>) and those left out (<see cref="Skipped"/>).</summary>
public sealed record CandidateScan(List<IPAddress> Candidates, List<SkippedAddress> Skipped);

/// <summary>The host's addresses that can be candidates (never the mesh interface's), and the mesh interface's own setup.</summary>
public static class InterfaceAddresses
{
    // ARPHRD_* link types of IP tunnels (if_arp.h): ipip, ip6tnl, sit, gre, ip6gre; ARPHRD_NONE is tun and wireguard.
    private static readonly HashSet<int> TunnelLinkTypes = [768, 769, 776, 778, 823, 65534];
    private static readonly HashSet<string> OverlayDeviceTypes = new(StringComparer.Ordinal) { "wireguard", "vxlan", "geneve" };

    /// <summary>
    /// The addresses of the host's physical and bridged interfaces. Tunnel interfaces (TUN and TAP devices such
    /// as Nebula's, ZeroTier's or another mesh's, WireGuard, IP tunnels, VXLAN) are left out: a path through one is
    /// WireGuard inside another overlay, which measured at 129 Mbit/s against 2,419 on the plain path it runs over.
    /// </summary>
    public static CandidateScan Candidates(string meshInterface)
    {
        var addresses = new List<IPAddress>();
        var skipped = new List<SkippedAddress>();
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (nic.Name == meshInterface || nic.NetworkInterfaceType == NetworkInterfaceType.Loopback || nic.OperationalStatus == OperationalStatus.Down) continue;
            var tunnel = TunnelKind(Path.Combine("/sys/class/net", nic.Name));
            foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
            {
                var address = unicast.Address;
                if (IPAddress.IsLoopback(address) || address.IsIPv6LinkLocal || address.IsIPv6Multicast) continue;
                if (address.AddressFamily == AddressFamily.InterNetwork && address.GetAddressBytes() is [169, 254, ..]) continue;
                if (tunnel is not null) skipped.Add(new SkippedAddress(nic.Name, address, tunnel));
                else addresses.Add(address);
            }
        }
        addresses.Sort((a, b) => string.CompareOrdinal(a.ToString(), b.ToString()));
        skipped.Sort((a, b) => string.CompareOrdinal(a.Interface + a.Address, b.Interface + b.Address));
        return new CandidateScan(addresses, skipped);
    }

    /// <summary>What kind of tunnel the interface in <paramref name="device"/> (its /sys/class/net directory) is, or null for a physical or bridged one.</summary>
    internal static string? TunnelKind(string device)
    {
        if (File.Exists(Path.Combine(device, "tun_flags"))) return "a TUN/TAP device (another overlay or VPN)";
        if (ReadDevType(Path.Combine(device, "uevent")) is { } devType && OverlayDeviceTypes.Contains(devType)) return $"a {devType} interface";
        if (int.TryParse(ReadFirstLine(Path.Combine(device, "type")), NumberStyles.Integer, CultureInfo.InvariantCulture, out var type) && TunnelLinkTypes.Contains(type))
        {
            return "a tunnel interface";
        }
        return null;
    }

    private static string? ReadDevType(string uevent)
    {
        try
        {
            foreach (var line in File.ReadLines(uevent))
            {
                if (line.StartsWith("DEVTYPE=", StringComparison.Ordinal)) return line["DEVTYPE=".Length..];
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }

    private static string? ReadFirstLine(string path)
    {
        try
        {
            return File.ReadLines(path).FirstOrDefault()?.Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The networks of the host's other interfaces (LANs, uplinks, other overlays): no peer's route may overlap one.</summary>
    public static List<IPNetwork> LocalNetworks(string meshInterface)
    {
        var networks = new List<IPNetwork>();
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (nic.Name == meshInterface || nic.NetworkInterfaceType == NetworkInterfaceType.Loopback) continue;
            foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
            {
                if (unicast.Address.IsIPv6LinkLocal || IPAddress.IsLoopback(unicast.Address)) continue;
                var network = Masked(unicast.Address, unicast.PrefixLength);
                if (!networks.Contains(network)) networks.Add(network);
            }
        }
        networks.Sort((a, b) => string.CompareOrdinal(a.ToString(), b.ToString()));
        return networks;
    }

    private static IPNetwork Masked(IPAddress address, int prefixLength)
    {
        var bytes = address.GetAddressBytes();
        for (var bit = prefixLength; bit < bytes.Length * 8; bit++) bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        return new IPNetwork(new IPAddress(bytes), prefixLength);
    }

    /// <summary>
    /// The IPv4 default gateway (from /proc/net/route, never through the mesh interface) and the address this
    /// host sends from toward it; null without one. Port mapping asks this gateway.
    /// </summary>
    public static (IPAddress Gateway, IPAddress Source)? DefaultGateway(string meshInterface)
    {
        IPAddress? gateway = null;
        foreach (var line in File.ReadLines("/proc/net/route").Skip(1))
        {
            // Iface Destination Gateway Flags ...: hex fields in host byte order; flag 0x2 is RTF_GATEWAY.
            var fields = line.Split('\t', StringSplitOptions.TrimEntries);
            if (fields.Length < 4 || fields[0] == meshInterface || fields[1] != "00000000") continue;
            if (!int.TryParse(fields[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var flags) || (flags & 0x2) == 0) continue;
            if (!uint.TryParse(fields[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var address)) continue;
            gateway = new IPAddress(address);
            break;
        }
        return gateway is not null && SourceToward(gateway) is { } source ? (gateway, source) : null;
    }

    /// <summary>
    /// The address this host sends from toward the internet: the default route's source, with or without a
    /// gateway (an LTE modem's or a PPP link's `default dev wwan0` has none), IPv4 first; null without a route.
    /// Connecting a UDP socket toward a documentation address sends nothing: the kernel only picks the route.
    /// </summary>
    public static IPAddress? OutboundSource() => SourceToward(IPAddress.Parse("192.0.2.1")) ?? SourceToward(IPAddress.Parse("2001:db8::1"));

    /// <summary>The address the kernel would send from toward <paramref name="destination"/>, or null without a route.</summary>
    private static IPAddress? SourceToward(IPAddress destination)
    {
        using var probe = new Socket(destination.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            probe.Connect(destination, 9);
            return ((IPEndPoint)probe.LocalEndPoint!).Address;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>Gives the mesh interface its addresses and MTU and brings it up.</summary>
    public static void Configure(string name, IEnumerable<string> addresses, int mtu)
    {
        foreach (var address in addresses)
        {
            var family = address.Contains(':') ? "-6" : "-4";
            Shell.Run("ip", family, "address", "replace", address, "dev", name);
        }
        Shell.Run("ip", "link", "set", "dev", name, "mtu", mtu.ToString(), "up");
    }

    /// <summary>Routes exactly the peers' prefixes into the mesh interface, adding and removing the difference.</summary>
    public static void SyncRoutes(string name, HashSet<string> wanted, HashSet<string> installed)
    {
        foreach (var prefix in wanted)
        {
            if (installed.Contains(prefix)) continue;
            Shell.Run("ip", prefix.Contains(':') ? "-6" : "-4", "route", "replace", prefix, "dev", name);
            installed.Add(prefix);
        }
        installed.RemoveWhere(prefix =>
        {
            if (wanted.Contains(prefix)) return false;
            try
            {
                Shell.Run("ip", prefix.Contains(':') ? "-6" : "-4", "route", "delete", prefix, "dev", name);
            }
            catch (InvalidOperationException)
            {
            }
            return true;
        });
    }
}
