using System.Net;
using System.Net.Sockets;

namespace Mesh.Tests.Shared;

/// <summary>A TCP port nothing listens on right now on loopback, for a server the test starts moments later.</summary>
public static class FreePorts
{
    public static int Tcp()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
