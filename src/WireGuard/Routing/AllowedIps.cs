using System.Net;
using System.Net.Sockets;

namespace Mesh.WireGuard.Routing;

/// <summary>
/// Cryptokey routing: a longest-prefix-match table from IPv4 and IPv6 prefixes to peers. A prefix belongs
/// to one peer; inserting it for another moves it. Each peer's prefixes are also listed, so removing a peer
/// costs its own prefixes rather than a walk of the whole trie, and a peer's set is swapped so that a lookup
/// sees the old set or the new one, never neither. Lookups take raw address bytes from packet headers and
/// run without locks; changes are serialized.
/// </summary>
public sealed class AllowedIps<TPeer> where TPeer : class
{
    private readonly Node _v4 = new();
    private readonly Node _v6 = new();
    private readonly Dictionary<TPeer, List<IPNetwork>> _prefixes = new(ReferenceEqualityComparer.Instance);
    private readonly object _writeLock = new();

    public void Insert(IPNetwork prefix, TPeer peer)
    {
        lock (_writeLock) InsertLocked(prefix, peer);
    }

    public bool Remove(IPNetwork prefix)
    {
        lock (_writeLock)
        {
            if (Find(prefix) is not { Peer: { } owner } node) return false;
            Volatile.Write(ref node.Peer, null);
            Unlist(owner, prefix);
            return true;
        }
    }

    public void RemovePeer(TPeer peer)
    {
        lock (_writeLock)
        {
            if (!_prefixes.Remove(peer, out var prefixes)) return;
            foreach (var prefix in prefixes)
            {
                if (Find(prefix) is { } node && ReferenceEquals(node.Peer, peer)) Volatile.Write(ref node.Peer, null);
            }
        }
    }

    /// <summary>
    /// Makes <paramref name="prefixes"/> the peer's whole set: the new prefixes go in first, then those it no
    /// longer has come out, so traffic to an address in both sets never finds the table without a route.
    /// </summary>
    public void SetPeerPrefixes(TPeer peer, IReadOnlyCollection<IPNetwork> prefixes)
    {
        lock (_writeLock)
        {
            foreach (var prefix in prefixes) InsertLocked(prefix, peer);
            if (!_prefixes.TryGetValue(peer, out var listed)) return;
            for (var i = listed.Count - 1; i >= 0; i--)
            {
                var prefix = listed[i];
                if (Contains(prefixes, prefix)) continue;
                if (Find(prefix) is { } node && ReferenceEquals(node.Peer, peer)) Volatile.Write(ref node.Peer, null);
                listed.RemoveAt(i);
            }
            if (listed.Count == 0) _prefixes.Remove(peer);
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
        lock (_writeLock)
        {
            var result = new List<IPNetwork>();
            if (!_prefixes.TryGetValue(peer, out var listed)) return result;
            foreach (var prefix in listed)
            {
                if (prefix.BaseAddress.AddressFamily == AddressFamily.InterNetwork) result.Add(prefix);
            }
            foreach (var prefix in listed)
            {
                if (prefix.BaseAddress.AddressFamily != AddressFamily.InterNetwork) result.Add(prefix);
            }
            return result;
        }
    }

    private void InsertLocked(IPNetwork prefix, TPeer peer)
    {
        var bytes = prefix.BaseAddress.GetAddressBytes();
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
        var previous = node.Peer;
        if (ReferenceEquals(previous, peer)) return;
        Volatile.Write(ref node.Peer, peer);
        if (previous is not null) Unlist(previous, prefix);
        if (!_prefixes.TryGetValue(peer, out var listed)) _prefixes[peer] = listed = new List<IPNetwork>(2);
        listed.Add(prefix);
    }

    private void Unlist(TPeer peer, IPNetwork prefix)
    {
        if (!_prefixes.TryGetValue(peer, out var listed)) return;
        listed.Remove(prefix);
        if (listed.Count == 0) _prefixes.Remove(peer);
    }

    /// <summary>The trie node that stands for exactly this prefix, or null.</summary>
    private Node? Find(IPNetwork prefix)
    {
        var bytes = prefix.BaseAddress.GetAddressBytes();
        Node? node = Root(prefix.BaseAddress);
        for (var bit = 0; bit < prefix.PrefixLength && node is not null; bit++) node = node.Children[Bit(bytes, bit)];
        return node;
    }

    private static bool Contains(IReadOnlyCollection<IPNetwork> prefixes, IPNetwork prefix)
    {
        foreach (var candidate in prefixes)
        {
            if (candidate == prefix) return true;
        }
        return false;
    }

    private Node Root(IPAddress address) => address.AddressFamily == AddressFamily.InterNetwork ? _v4 : _v6;

    private static int Bit(byte[] bytes, int bit) => (bytes[bit >> 3] >> (7 - (bit & 7))) & 1;

    private sealed class Node
    {
        public readonly Node?[] Children = new Node?[2];
        public TPeer? Peer;
    }
}
