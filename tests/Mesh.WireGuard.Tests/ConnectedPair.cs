namespace Mesh.WireGuard.Tests;

/// <summary>Two nodes that know each other's key, endpoint and mesh address; no handshake yet.</summary>
public abstract class ConnectedPair
{
    private protected readonly TestNetwork _net = new();
    private protected readonly TestNetwork.Node _a;
    private protected readonly TestNetwork.Node _b;

    protected ConnectedPair()
    {
        _a = _net.AddNode("192.0.2.1:51820", "10.9.0.1");
        _b = _net.AddNode("198.51.100.2:51820", "10.9.0.2");
        TestNetwork.Connect(_a, _b);
    }
}
