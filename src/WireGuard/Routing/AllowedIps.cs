using System.Net;
using System.Net.Sockets;

namespace Mesh.WireGuard.Routing;

/// <summary>
/// Cryptokey routing: a longest-prefix-match table from IPv4 and IPv6 prefixes to peers. A prefix belongs
/// to one peer; inserting it for another moves it. Lookups take raw address bytes from packet headers and
/// run without locks; changes are serialized.
/// </summary>
public sealed class AllowedIps<TPeer> where TPeer : class
{
    private readonly Node _v4 = new();
    private readonly Node _v6 = new();
    private readonly object _writeLock = new();

    public void Insert(IPNetwork prefix, TPeer peer)
    {
        var bytes = prefix.BaseAddress.GetAddressBytes();
        lock (_writeLock)
        {
            var node = Root(prefix.BaseAddress);
            for (var bit = 0; bit < prefix.PrefixLength; bit++)
            {
                var side = Bit(bytes, bit);
                var child = node.Children[side];
                if (child is null)
                {
                    child = new Node();
                    Volatile.Write(ref node.Children[side], child);
                }
                node = child;
            }
            Volatile.Write(ref node.Peer, peer);
        }
    }

    public bool Remove(IPNetwork prefix)
    {
        var bytes = prefix.BaseAddress.GetAddressBytes();
        lock (_writeLock)
        {
            var node = Root(prefix.BaseAddress);
            for (var bit = 0; bit < prefix.PrefixLength && node is not null; bit++) node = node.Children[Bit(bytes, bit)];
            if (node?.Peer is null) return false;
            Volatile.Write(ref node.Peer, null);
            return true;
        }
    }

    public void RemovePeer(TPeer peer)
    {
        lock (_writeLock)
        {
            Clear(_v4, peer);
            Clear(_v6, peer);
        }
    }

    /// <summary>The peer whose longest prefix covers the address (4 or 16 bytes), or null.</summary>
    public TPeer? Lookup(ReadOnlySpan<byte> address)
    {
        var node = address.Length == 4 ? _v4 : address.Length == 16 ? _v6 : null;
        if (node is null) return null;
        var best = Volatile.Read(ref node.Peer);
        var bits = address.Length * 8;
        for (var bit = 0; bit < bits; bit++)
        {
            node = Volatile.Read(ref node.Children[(address[bit >> 3] >> (7 - (bit & 7))) & 1]);
            if (node is null) break;
            best = Volatile.Read(ref node.Peer) ?? best;
        }
        return best;
    }

    public TPeer? Lookup(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var written);
        return Lookup(bytes[..written]);
    }

    /// <summary>The prefixes that belong to the peer, IPv4 first.</summary>
    public List<IPNetwork> PrefixesOf(TPeer peer)
    {
        var result = new List<IPNetwork>();
        lock (_writeLock)
        {
            Collect(_v4, peer, new byte[4], 0, result);
            Collect(_v6, peer, new byte[16], 0, result);
        }
        return result;
    }

    private Node Root(IPAddress address) => address.AddressFamily == AddressFamily.InterNetwork ? _v4 : _v6;

    private static int Bit(byte[] bytes, int bit) => (bytes[bit >> 3] >> (7 - (bit & 7))) & 1;

    private static void Clear(Node node, TPeer peer)
    {
        if (ReferenceEquals(node.Peer, peer)) Volatile.Write(ref node.Peer, null);
        foreach (var child in node.Children)
        {
            if (child is not null) Clear(child, peer);
        }
    }

    private static void Collect(Node node, TPeer peer, byte[] path, int depth, List<IPNetwork> result)
    {
        if (ReferenceEquals(node.Peer, peer)) result.Add(new IPNetwork(new IPAddress(path), depth));
        for (var side = 0; side < 2; side++)
        {
            var child = node.Children[side];
            if (child is null) continue;
            if (side == 1) path[depth >> 3] |= (byte)(1 << (7 - (depth & 7)));
            Collect(child, peer, path, depth + 1, result);
            if (side == 1) path[depth >> 3] &= (byte)~(1 << (7 - (depth & 7)));
        }
    }

    private sealed class Node
    {
        public readonly Node?[] Children = new Node?[2];
        public TPeer? Peer;
    }
}
