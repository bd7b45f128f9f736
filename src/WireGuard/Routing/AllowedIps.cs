using System.Net;
using System.Net.Sockets;

namespace Mesh.WireGuard.Routing;

/// <summary>
/// Cryptokey routing: a longest-prefix-match table from IPv4 and IPv6 prefixes to peers, a path-compressed
/// binary trie (wireguard-go's allowedips shape): a node per stored prefix plus one per fork, so a lookup takes
/// a few steps instead of one per bit, and removals prune what no prefix needs any more. A prefix belongs to
/// one peer; inserting it for another moves it. Each peer's prefixes are also listed, so removing a peer costs
/// its own prefixes rather than a walk of the whole trie, and a peer's set is swapped so that a lookup sees the
/// old set or the new one, never neither. Lookups take raw address bytes from packet headers and run without
/// locks (every change publishes whole nodes with one write); changes are serialized.
/// </summary>
public sealed class AllowedIps<TPeer> where TPeer : class
{
    private readonly Root _v4 = new();
    private readonly Root _v6 = new();
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
            if (Find(prefix) is not { Peer: { } owner }) return false;
            Clear(prefix, owner);
            Unlist(owner, prefix);
            return true;
        }
    }

    public void RemovePeer(TPeer peer)
    {
        lock (_writeLock)
        {
            if (!_prefixes.Remove(peer, out var prefixes)) return;
            foreach (var prefix in prefixes) Clear(prefix, peer);
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
                Clear(prefix, peer);
                listed.RemoveAt(i);
            }
            if (listed.Count == 0) _prefixes.Remove(peer);
        }
    }

    /// <summary>The peer whose longest prefix covers the address (4 or 16 bytes), or null.</summary>
    public TPeer? Lookup(ReadOnlySpan<byte> address)
    {
        var root = address.Length == 4 ? _v4 : address.Length == 16 ? _v6 : null;
        if (root is null) return null;
        TPeer? best = null;
        var node = Volatile.Read(ref root.Top);
        while (node is not null && CommonBits(node.Bits, address) >= node.Length)
        {
            best = Volatile.Read(ref node.Peer) ?? best;
            if (node.Length == address.Length * 8) break;
            node = Volatile.Read(ref node.Children[Bit(address, node.Length)]);
        }
        return best;
    }

    public TPeer? Lookup(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var written);
        return Lookup(bytes[..written]);
    }

    /// <summary>Nodes in the trie (prefixes and forks), for tests of pruning.</summary>
    internal int NodeCount
    {
        get
        {
            lock (_writeLock) return Count(_v4.Top) + Count(_v6.Top);
        }
    }

    private static int Count(Node? node) => node is null ? 0 : 1 + Count(node.Children[0]) + Count(node.Children[1]);

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
        var bits = prefix.BaseAddress.GetAddressBytes();
        var length = prefix.PrefixLength;
        var root = RootOf(prefix.BaseAddress);
        // Walk down while the nodes are prefixes of the new one.
        Node? parent = null;
        var node = root.Top;
        while (node is not null && node.Length <= length && CommonBits(node.Bits, bits) >= node.Length)
        {
            if (node.Length == length)
            {
                var previous = node.Peer;
                if (ReferenceEquals(previous, peer)) return;
                Volatile.Write(ref node.Peer, peer);
                if (previous is not null) Unlist(previous, prefix);
                List(peer, prefix);
                return;
            }
            parent = node;
            node = node.Children[Bit(bits, node.Length)];
        }
        var fresh = new Node(bits, length) { Peer = peer };
        if (node is not null)
        {
            var common = Math.Min(CommonBits(node.Bits, bits), length);
            if (common == length)
            {
                // The new prefix covers the node: it goes in above it.
                fresh.Children[Bit(node.Bits, length)] = node;
            }
            else
            {
                // They part ways at bit `common`: a fork without a peer holds both.
                var fork = new Node(bits, common);
                fork.Children[Bit(node.Bits, common)] = node;
                fork.Children[Bit(bits, common)] = fresh;
                fresh = fork;
            }
        }
        Attach(root, parent, parent is null ? 0 : Bit(bits, parent.Length), fresh);
        List(peer, prefix);
    }

    /// <summary>Takes the prefix from the peer, if it still has it, and prunes nodes that no longer hold a prefix or a fork.</summary>
    private void Clear(IPNetwork prefix, TPeer peer)
    {
        var bits = prefix.BaseAddress.GetAddressBytes();
        var root = RootOf(prefix.BaseAddress);
        Node? grandparent = null, parent = null;
        var node = root.Top;
        while (node is not null && node.Length < prefix.PrefixLength && CommonBits(node.Bits, bits) >= node.Length)
        {
            grandparent = parent;
            parent = node;
            node = node.Children[Bit(bits, node.Length)];
        }
        if (node is null || node.Length != prefix.PrefixLength || CommonBits(node.Bits, bits) < node.Length || !ReferenceEquals(node.Peer, peer)) return;
        Volatile.Write(ref node.Peer, null);
        if (node.Children[0] is not null && node.Children[1] is not null) return;
        var only = node.Children[0] ?? node.Children[1];
        Attach(root, parent, SideOf(parent, node), only);
        // A fork left with one child is spliced out too.
        if (only is null && parent is { Peer: null } && (parent.Children[0] ?? parent.Children[1]) is { } sibling)
        {
            Attach(root, grandparent, SideOf(grandparent, parent), sibling);
        }
    }

    /// <summary>Puts <paramref name="node"/> on this side of <paramref name="parent"/>, or at the top: one write a lookup sees whole.</summary>
    private static void Attach(Root root, Node? parent, int side, Node? node)
    {
        if (parent is null) Volatile.Write(ref root.Top, node);
        else Volatile.Write(ref parent.Children[side], node);
    }

    private static int SideOf(Node? parent, Node child) => parent is not null && ReferenceEquals(parent.Children[1], child) ? 1 : 0;

    private void List(TPeer peer, IPNetwork prefix)
    {
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
        var bits = prefix.BaseAddress.GetAddressBytes();
        var node = RootOf(prefix.BaseAddress).Top;
        while (node is not null && node.Length <= prefix.PrefixLength && CommonBits(node.Bits, bits) >= node.Length)
        {
            if (node.Length == prefix.PrefixLength) return node;
            node = node.Children[Bit(bits, node.Length)];
        }
        return null;
    }

    private static bool Contains(IReadOnlyCollection<IPNetwork> prefixes, IPNetwork prefix)
    {
        foreach (var candidate in prefixes)
        {
            if (candidate == prefix) return true;
        }
        return false;
    }

    private Root RootOf(IPAddress address) => address.AddressFamily == AddressFamily.InterNetwork ? _v4 : _v6;

    private static int Bit(ReadOnlySpan<byte> bytes, int bit) => (bytes[bit >> 3] >> (7 - (bit & 7))) & 1;

    /// <summary>How many leading bits the two addresses share.</summary>
    private static int CommonBits(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        for (var i = 0; i < a.Length; i++)
        {
            var differ = a[i] ^ b[i];
            if (differ != 0) return i * 8 + System.Numerics.BitOperations.LeadingZeroCount((uint)differ) - 24;
        }
        return a.Length * 8;
    }

    private sealed class Root
    {
        public Node? Top;
    }

    /// <summary>A prefix (with a peer) or a fork (without): the address bits masked to its length, and its two sides.</summary>
    private sealed class Node(byte[] bits, int length)
    {
        public readonly byte[] Bits = Mask(bits, length);
        public readonly int Length = length;
        public readonly Node?[] Children = new Node?[2];
        public TPeer? Peer;

        private static byte[] Mask(byte[] bits, int length)
        {
            var masked = (byte[])bits.Clone();
            for (var bit = length; bit < masked.Length * 8; bit++) masked[bit >> 3] &= (byte)~(0x80 >> (bit & 7));
            return masked;
        }
    }
}
