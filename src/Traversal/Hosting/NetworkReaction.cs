using System.Net;
using Mesh.Traversal.Paths;

namespace Mesh.Traversal.Hosting;

/// <summary>What a scan of the host's network found: its candidate addresses, the address traffic to the internet leaves from, and the default gateway with this host's address toward it.</summary>
public sealed record NetworkScan(IReadOnlyList<IPAddress> Addresses, IPAddress? Outbound, IPAddress? Gateway, IPAddress? GatewaySource);

/// <summary>Whether a scan found the first network, the same one, or another (new addresses, or the same ones leaving through another).</summary>
public enum NetworkVerdict
{
    First,
    Same,
    Changed,
}

/// <summary>
/// How a node reacts to a scan of its network, shared by the agent's network watch and the NAT lab so both run the
/// same reaction. The gateway goes to the engine first (a new one maps afresh), then the addresses: new ones, or
/// the default route leaving through another address with the same ones (a laptop on Wi-Fi and LTE whose Wi-Fi
/// fades), are a new network, and the control stream and relay streams dial again rather than wait for keepalives
/// to find their connections gone. A lease gives an address and then a route: that is two changes, and the second,
/// when traffic can leave, is what brings the peers back at once. Not thread-safe: one watcher calls it.
/// </summary>
public sealed class NetworkReaction(PathEngine engine, ControlClient control, MeshLinks links)
{
    private List<IPAddress>? _addresses;
    private IPAddress? _outbound;

    public NetworkVerdict Apply(NetworkScan scan, int port)
    {
        var routeMoved = _addresses is not null && scan.Outbound is not null && _outbound is not null && !scan.Outbound.Equals(_outbound);
        engine.SetGateway(scan.Gateway, scan.GatewaySource);
        engine.NetworkChanged(scan.Addresses, port, routeMoved);
        var verdict = _addresses is null ? NetworkVerdict.First
            : routeMoved || !_addresses.SequenceEqual(scan.Addresses) ? NetworkVerdict.Changed
            : NetworkVerdict.Same;
        if (verdict == NetworkVerdict.Changed)
        {
            control.Reconnect();
            links.Reconnect();
        }
        _addresses = [.. scan.Addresses];
        if (scan.Outbound is not null) _outbound = scan.Outbound;
        return verdict;
    }
}
