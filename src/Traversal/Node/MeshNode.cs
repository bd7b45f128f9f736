using System.Collections.Concurrent;
using System.Net;
using Google.Protobuf;
using Mesh.Control;
using Mesh.Protos.V1;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Node;

/// <summary>
/// One mesh node without I/O: the netmap from the coordinator drives the WireGuard device's peers and the
/// path engine's view of them. Every peer's WireGuard endpoint is its synthetic endpoint and never roams,
/// so the engine alone decides where packets go. A netmap message touches only the peers it changed. The
/// node's own state has one lock (the view's), which the control thread (<see cref="Apply"/>) and the timer
/// thread (<see cref="Tick"/>) both take. Production and the NAT lab both run this class.
/// Lock order, for the whole agent: the view's lock, then the path engine's gate, then the leaves the engine calls
/// under it (the control outbox's lock, the relay stream set's, a WireGuard peer's never). The view calls the
/// engine, never the other way; the bind and the device call the engine's lock-free data path (its route snapshots)
/// or take the gate alone, never the view's lock. Names are resolved outside every lock: a DNS lookup can take seconds.
/// </summary>
public sealed class MeshNode
{
    private readonly Func<string, NetEndpoint?> _resolve;
    private static readonly TimeSpan StalledHandshake = TimeSpan.FromMilliseconds(100);
    private readonly Dictionary<PublicKey, int> _routeGenerations = new();
    private readonly HashSet<PublicKey> _expedite = new();
    private readonly Dictionary<PublicKey, List<IPNetwork>> _admitted = new();
    private TimeSpan _keepalive = TimeSpan.MinValue;

    /// <param name="resolve">Turns the netmap's "host:port" (STUN servers, relays) into endpoints (DNS is the host's business); called outside every lock.</param>
    /// <param name="routes">What of a peer's allowed IPs this host takes (the agent tells it the host's side).</param>
    public MeshNode(Device device, PathEngine engine, Func<string, NetEndpoint?> resolve, RouteGuard routes, PolicyFilter filter)
    {
        Device = device;
        Filter = filter;
        Engine = engine;
        _resolve = resolve;
        Routes = routes;
        View = new NetMapView(ByteString.CopyFrom(engine.PublicKey.Span));
    }

    private volatile ConcurrentDictionary<NodeKeyId, byte> _members = new();
    private List<Protos.V1.Relay> _relays = new();
    private Dictionary<string, NetEndpoint?> _resolved = new(StringComparer.Ordinal);

    public Device Device { get; }

    /// <summary>The policy as this node enforces it on what its peers send (the device consults it).</summary>
    public PolicyFilter Filter { get; }
    public PathEngine Engine { get; }
    public NetMapView View { get; }
    public RouteGuard Routes { get; }

    /// <summary>Peers whose keys are not usable (wrong size, a low-order point), each time a map named them.</summary>
    public long IgnoredPeers { get; private set; }

    /// <summary>
    /// The host's networks and the addresses it must reach outside the mesh changed: the peers' prefixes are
    /// admitted again against them. Takes the view's lock.
    /// </summary>
    public void SetHostNetworks(IReadOnlyList<IPNetwork> localNetworks, IReadOnlyList<(IPAddress Address, string What)> addresses)
    {
        lock (View)
        {
            if (Routes.SetHost(localNetworks, addresses)) AdmitAll();
        }
    }

    /// <summary>Every prefix the peers were admitted with: what the agent routes into the interface. Takes the view's lock.</summary>
    public HashSet<string> AdmittedPrefixes()
    {
        var prefixes = new HashSet<string>();
        lock (View)
        {
            foreach (var admitted in _admitted.Values)
            {
                foreach (var prefix in admitted) prefixes.Add(prefix.ToString());
            }
        }
        return prefixes;
    }

    /// <summary>Applies one message of the sync stream. Hostile content (bad keys, bad prefixes) is skipped, never thrown.</summary>
    public void Apply(SyncResponse message)
    {
        switch (message.KindCase)
        {
            case SyncResponse.KindOneofCase.Connect:
                if (UsableKey(message.Connect.PeerKey) is { } from) Engine.OnConnectNotice(from, message.Connect.Endpoints);
                break;
            case SyncResponse.KindOneofCase.Self:
                lock (View)
                {
                    if (View.Apply(message)) SyncPeers(View.LastChange);
                }
                break;
            case SyncResponse.KindOneofCase.Full:
            case SyncResponse.KindOneofCase.Delta:
                NetMapChange change;
                List<string> names;
                lock (View)
                {
                    if (!View.Apply(message)) return;
                    change = View.LastChange;
                    // A delta that names no other STUN server or relay needs no lookup: the last ones stand.
                    if (!change.Full && NamesResolved())
                    {
                        SyncPeers(change);
                        return;
                    }
                    names = NamesToResolve();
                }
                var resolved = new Dictionary<string, NetEndpoint?>(StringComparer.Ordinal);
                foreach (var name in names) resolved[name] = _resolve(name);
                lock (View)
                {
                    _resolved = resolved;
                    SyncPeers(change);
                }
                break;
        }
    }

    /// <summary>The names the map gives for the coordinator's STUN servers and relays. The caller holds the view's lock.</summary>
    private List<string> NamesToResolve()
    {
        var names = new List<string>(View.StunServers);
        foreach (var relay in View.Relays)
        {
            if (relay.UdpAddress.Length > 0) names.Add(relay.UdpAddress);
        }
        return names;
    }

    /// <summary>Whether the map names exactly the STUN servers and relays the last lookups resolved. The caller holds the view's lock.</summary>
    private bool NamesResolved()
    {
        var count = 0;
        foreach (var stun in View.StunServers)
        {
            if (!_resolved.ContainsKey(stun)) return false;
            count++;
        }
        foreach (var relay in View.Relays)
        {
            if (relay.UdpAddress.Length == 0) continue;
            if (!_resolved.ContainsKey(relay.UdpAddress)) return false;
            count++;
        }
        return count == _resolved.Count;
    }

    /// <summary>A name the last lookups resolved; a peer's own relay address is taken only as a literal "ip:port".</summary>
    private NetEndpoint? Resolved(string hostAndPort)
    {
        if (_resolved.TryGetValue(hostAndPort, out var endpoint)) return endpoint;
        return IPEndPoint.TryParse(hostAndPort, out var literal) && literal.Port != 0 ? new NetEndpoint(literal) : null;
    }

    /// <summary>Whether the key is this node or one of its peers: a relay run by this node serves only those. Thread-safe.</summary>
    public bool IsMember(PublicKey key) => key.Equals(Engine.PublicKey) || _members.ContainsKey(NodeKeyId.From(key));

    /// <summary>
    /// Runs the engine's timers and keeps the NAT keepalive and stalled handshakes in step with its routes. The
    /// device's own timers are its host's (the interface's timer thread, the lab's clock), ticked once.
    /// </summary>
    public void Tick()
    {
        Engine.Tick();
        lock (View) TickPeers();
    }

    private void TickPeers()
    {
        foreach (var peer in Device.Peers)
        {
            var generation = Engine.RouteGeneration(peer.PublicKey);
            if (!_routeGenerations.TryGetValue(peer.PublicKey, out var seen) || seen != generation)
            {
                _routeGenerations[peer.PublicKey] = generation;
                // Only the side with the lower key: both restarting at once would cross handshakes forever.
                if (IsLower(Engine.PublicKey, peer.PublicKey)) _expedite.Add(peer.PublicKey);
            }
            // A new route: initiations sent before it existed went nowhere, so start one now rather than in RekeyTimeout.
            if (_expedite.Contains(peer.PublicKey) && (peer.HasSession || Device.ExpediteHandshake(peer, StalledHandshake))) _expedite.Remove(peer.PublicKey);
        }
        var keepalive = Engine.BehindNat ? Engine.Options.NatKeepalive : TimeSpan.Zero;
        if (keepalive == _keepalive) return;
        _keepalive = keepalive;
        foreach (var peer in Device.Peers) Device.SetPersistentKeepalive(peer, keepalive);
    }

    private static bool IsLower(PublicKey a, PublicKey b) => a.Span.SequenceCompareTo(b.Span) < 0;

    private void SyncPeers(NetMapChange change)
    {
        if (change.Full)
        {
            var stun = View.StunServers;
            Engine.SetStunServers(stun.Count > 0 ? Resolved(stun[0]) : null, stun.Count > 1 ? Resolved(stun[1]) : null);
            // The mesh prefixes come with the full map: peers are admitted against this map's, not the last one's.
            Routes.SetMap(View.MeshPrefixes, MapAddresses());
        }
        // With a policy, the filter closes before any peer of a per-node map is added: it opens with the node's own record.
        if (View.PerNode && !Filter.Active) Filter.SetFilter(true, null, []);
        // A full map replaces the members at once (a relay run here never sees an empty set); a delta edits them.
        var members = change.Full ? new ConcurrentDictionary<NodeKeyId, byte>() : _members;
        foreach (var peer in change.Removed)
        {
            if (peer.NodeKey.Length != Key32.Size) continue;
            var key = new PublicKey(peer.NodeKey.Span);
            members.TryRemove(NodeKeyId.From(key), out _);
            if (Device.FindPeer(key) is { } gone) Filter.RemovePeer(gone);
            Device.RemovePeer(key);
            Engine.RemovePeer(key);
            _admitted.Remove(key);
            _routeGenerations.Remove(key);
            _expedite.Remove(key);
        }
        foreach (var entry in change.Upserted)
        {
            if (UsableKey(entry.NodeKey) is not { } key)
            {
                IgnoredPeers++;
                continue;
            }
            if (key.Equals(Engine.PublicKey)) continue;
            members[NodeKeyId.From(key)] = 0;
            var synthetic = Engine.UpsertPeer(key, entry.Endpoints, entry.Online);
            var existed = Device.FindPeer(key) is not null;
            var peer = Device.GetOrAddPeer(key);
            peer.Roams = false;
            peer.Endpoint = synthetic;
            Admit(peer, key, entry);
            if (!change.Full) Filter.SetPeer(peer, entry);
            if (!existed && _keepalive > TimeSpan.Zero) Device.SetPersistentKeepalive(peer, _keepalive);
        }
        _members = members;
        if (change.Full || change.SelfChanged) Filter.SetFilter(View.PerNode, View.PerNode ? View.Self?.Filter : null, FilteredPeers());
        if (RelaysMayHaveChanged(change))
        {
            var relays = Relays();
            if (!SameRelays(relays, _relays)) Engine.SetRelays(relays);
            _relays = relays;
        }
        if (Routes.SetMap(View.MeshPrefixes, MapAddresses())) AdmitAll();
    }

    /// <summary>The peers of the map with their interface peers, for the filter to work out what each may open here.</summary>
    private List<(WireGuard.Core.Peer, Protos.V1.Peer)> FilteredPeers()
    {
        var peers = new List<(WireGuard.Core.Peer, Protos.V1.Peer)>(View.Peers.Count);
        foreach (var entry in View.Peers.Values)
        {
            if (UsableKey(entry.NodeKey) is { } key && Device.FindPeer(key) is { } peer) peers.Add((peer, entry));
        }
        return peers;
    }

    /// <summary>A peer key from the map, or null for one that is the wrong size or a low-order point (no session could be made with it).</summary>
    public static PublicKey? UsableKey(ByteString bytes)
    {
        if (bytes.Length != Key32.Size) return null;
        var key = new PublicKey(bytes.Span);
        return key.IsLowOrder() ? null : key;
    }

    private void Admit(WireGuard.Core.Peer peer, PublicKey key, Protos.V1.Peer entry)
    {
        var admitted = Routes.Admit(key, entry.Name, entry.AllowedIps);
        _admitted[key] = admitted;
        Device.SetAllowedIps(peer, admitted, replace: true);
    }

    private void AdmitAll()
    {
        foreach (var entry in View.Peers.Values)
        {
            if (UsableKey(entry.NodeKey) is { } key && !key.Equals(Engine.PublicKey) && Device.FindPeer(key) is { } peer) Admit(peer, key, entry);
        }
    }

    /// <summary>The STUN servers and relays the map names, as this host reaches them: no peer's prefix may cover them.</summary>
    private List<(IPAddress Address, string What)> MapAddresses()
    {
        var addresses = new List<(IPAddress, string)>();
        foreach (var stun in View.StunServers)
        {
            if (Resolved(stun) is { } endpoint) addresses.Add((endpoint.Address, "the STUN server"));
        }
        foreach (var relay in _relays)
        {
            if (IPEndPoint.TryParse(relay.UdpAddress, out var endpoint)) addresses.Add((endpoint.Address, $"the relay {relay.Id}"));
        }
        return addresses;
    }

    /// <summary>The coordinator's relays changed, or a changed or removed peer offers to relay or did.</summary>
    private bool RelaysMayHaveChanged(NetMapChange change)
    {
        if (change.RelaysChanged) return true;
        foreach (var peer in change.Upserted)
        {
            if (peer.Endpoints is { RelayAddress.Length: > 0 } || IsRelay(peer.Name)) return true;
        }
        foreach (var peer in change.Removed)
        {
            if (IsRelay(peer.Name)) return true;
        }
        return false;
    }

    private bool IsRelay(string id)
    {
        foreach (var relay in _relays)
        {
            if (relay.Id == id) return true;
        }
        return false;
    }

    private static bool SameRelays(List<Protos.V1.Relay> a, List<Protos.V1.Relay> b)
    {
        if (a.Count != b.Count) return false;
        for (var i = 0; i < a.Count; i++)
        {
            if (!a[i].Equals(b[i])) return false;
        }
        return true;
    }

    /// <summary>
    /// The coordinator's relays, then every online peer that offers to relay (announced in its endpoints), and
    /// every peer relay that still answers us though the coordinator no longer says so: a coordinator that
    /// restarts knows nodes as offline and without endpoints until they reconnect, and the tunnels through a
    /// live relay must not wait for that. A relay that really went away stops answering and drops out then.
    /// </summary>
    private List<Protos.V1.Relay> Relays()
    {
        var relays = new List<Protos.V1.Relay>();
        foreach (var relay in View.Relays) relays.Add(Resolved(relay));
        foreach (var peer in View.Peers.Values)
        {
            if (peer.Online && peer.Endpoints is { RelayAddress.Length: > 0 } endpoints)
            {
                relays.Add(Resolved(new Protos.V1.Relay { Id = peer.Name, UdpAddress = endpoints.RelayAddress, NodeKey = peer.NodeKey }));
            }
            else if (Engine.AliveRelay(peer.Name) is { } answering && answering.NodeKey.Equals(peer.NodeKey))
            {
                relays.Add(answering);
            }
        }
        return relays;
    }

    private Protos.V1.Relay Resolved(Protos.V1.Relay relay)
    {
        if (relay.UdpAddress.Length == 0) return relay;
        var copy = relay.Clone();
        copy.UdpAddress = Resolved(relay.UdpAddress)?.ToString() ?? "";
        return copy;
    }
}
