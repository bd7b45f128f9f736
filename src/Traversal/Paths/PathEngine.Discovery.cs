using System.Net;
using Mesh.Protos.V1;
using Mesh.Traversal.NatDiscovery;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Paths;

/// <summary>NAT discovery and this node's own candidates: STUN runs, local addresses, what the coordinator is told.</summary>
public sealed partial class PathEngine
{
    private NetEndpoint? _stunFirst;
    private NetEndpoint? _stunSecond;
    private NetcheckProbe? _netcheck;
    private TimeSpan? _nextNetcheck;
    private bool _restartPhasesAfterNetcheck = true;
    private List<NetEndpoint> _locals = new();
    private bool _udpBlocked;
    private Endpoints? _published;
    private string _relayOffer = "";

    /// <summary>The latest NAT report and when it was made; null before the first.</summary>
    public (NetcheckReport Report, DateTime At)? LastNetcheck { get; private set; }

    /// <summary>False only when STUN showed no translation in front of this node.</summary>
    public bool BehindNat
    {
        get
        {
            lock (_gate) return LastNetcheck?.Report.Verdict.Mapping != NatMappingKind.None;
        }
    }

    private NatMapping MyMapping => LastNetcheck?.Report.Verdict.Mapping switch
    {
        NatMappingKind.None => NatMapping.None,
        NatMappingKind.EndpointIndependent => NatMapping.EndpointIndependent,
        NatMappingKind.EndpointDependent => NatMapping.EndpointDependent,
        _ => NatMapping.Unknown,
    };

    /// <summary>The coordinator's two STUN endpoints; a change starts a new NAT discovery run.</summary>
    public void SetStunServers(NetEndpoint? first, NetEndpoint? second)
    {
        lock (_gate)
        {
            if (_stunFirst == first && _stunSecond == second) return;
            _stunFirst = first;
            _stunSecond = second;
            _nextNetcheck = _clock.Now;
        }
    }

    /// <summary>
    /// The host's addresses (never the mesh interface's own) and the port of socket 0. A change means a new
    /// network: every direct path is dropped, relay sessions restart from the new address, NAT discovery
    /// runs again, and every peer is probed anew once the new candidates are known. So does
    /// <paramref name="routeMoved"/>: the default route left for another interface (a laptop on Wi-Fi and LTE at
    /// once whose Wi-Fi fades), the same addresses but another way out, another NAT and another public address.
    /// </summary>
    public void NetworkChanged(IEnumerable<IPAddress> addresses, int port, bool routeMoved = false)
    {
        lock (_gate)
        {
            var locals = new List<NetEndpoint>();
            foreach (var address in addresses) locals.Add(new NetEndpoint(address, port));
            var first = _locals.Count == 0 && _published is null;
            if (!first && !routeMoved && locals.Count == _locals.Count && locals.TrueForAll(_locals.Contains)) return;
            _locals = locals;
            var portChanged = _listenPort != port;
            _listenPort = port;
            // A new network is a new router (even at the gateway address of the old one): map afresh.
            if (!first || portChanged)
            {
                _portMap.Restart(port, _clock.Now);
                PublishEndpointsIfChanged();
            }
            var now = _clock.Now;
            if (!first)
            {
                foreach (var peer in _peers.Values)
                {
                    if (peer.Birthday is not null) EndBirthday(peer, now, keepSocket: -1);
                    peer.Paths.Clear();
                    peer.Best = null;
                    peer.DirectSince = null;
                    peer.LastFailure = "this node's network changed";
                    // Tell the peer through the relay at once (a relayed ping), so it stops trusting our old address.
                    peer.LastRelayPing = null;
                    StartPhase(peer, now, requestConnect: true);
                    UpdateRoute(peer, now);
                }
                _relays.Reset();
                _restartPhasesAfterNetcheck = true;
            }
            _netcheck = null;
            _nextNetcheck = now;
            PublishEndpointsIfChanged();
        }
    }

    /// <summary>This node runs a relay at "ip:port": the coordinator announces it to everyone.</summary>
    public void OfferRelay(string address)
    {
        lock (_gate)
        {
            _relayOffer = address;
            PublishEndpointsIfChanged();
        }
    }

    /// <summary>Starts a NAT discovery run now (`mesh-agent netcheck`).</summary>
    public void RunNetcheck()
    {
        lock (_gate)
        {
            _netcheck = null;
            _nextNetcheck = _clock.Now;
        }
    }

    private void TickDiscovery(TimeSpan now)
    {
        TickPortMap(now);
        if (_netcheck is null)
        {
            if (_stunFirst is not { } first || _stunSecond is not { } second || _nextNetcheck is not { } due || now < due) return;
            _netcheck = new NetcheckProbe(first, second, _locals, now, _entropy);
        }
        int length;
        while ((length = _netcheck.Poll(now, _scratch, out var destination)) > 0) _sockets.SendUdp(0, _scratch.AsSpan(0, length), destination);
        if (_netcheck.IsDone) FinishNetcheck(now);
    }

    private void OnStun(ReadOnlySpan<byte> datagram, TimeSpan now)
    {
        if (_netcheck?.OnResponse(datagram, now) != true) Interlocked.Increment(ref _strayDatagrams);
        else if (_netcheck.IsDone) FinishNetcheck(now);
    }

    private void FinishNetcheck(TimeSpan now)
    {
        var report = _netcheck!.Report!;
        _netcheck = null;
        _nextNetcheck = now + Options.NetcheckInterval;
        // Silence from STUN while a relay or a peer answers over UDP means the STUN server is down (the
        // coordinator is), not that UDP is blocked: keep what the last run found.
        if (report.Verdict.UdpBlocked && LastNetcheck is not null && UdpEvidentlyWorks(now)) return;
        LastNetcheck = (report, _clock.UtcNow);
        _udpBlocked = report.Verdict.UdpBlocked;
        _relays.SetUdpBlocked(_udpBlocked);
        PublishEndpointsIfChanged();
        if (!_restartPhasesAfterNetcheck) return;
        _restartPhasesAfterNetcheck = false;
        foreach (var peer in _peers.Values)
        {
            if (peer.Best is null && peer.Online) StartPhase(peer, now, requestConnect: true);
        }
    }

    private bool UdpEvidentlyWorks(TimeSpan now)
    {
        if (_relays.AnswersOverUdp(now)) return true;
        foreach (var peer in _peers.Values)
        {
            if (peer.Best?.LastPong is { } pong && now - pong < Options.NetcheckInterval) return true;
        }
        return false;
    }

    private void PublishEndpointsIfChanged()
    {
        var endpoints = new Endpoints
        {
            NatMapping = MyMapping,
            UdpBlocked = _udpBlocked,
            PreferredRelay = _relays.Home(_clock.Now)?.Id ?? "",
            RelayAddress = _relayOffer,
        };
        foreach (var local in _locals) endpoints.Candidates.Add(new Candidate { Address = local.ToString(), Kind = CandidateKind.Local });
        var mapped = MappedExternal;
        // A port-keeping router may map the very port STUN saw: the candidate is then the mapping, which admits anyone.
        if (LastNetcheck?.Report.Verdict.Reflexive is { } reflexive && !_locals.Contains(reflexive) && reflexive != mapped)
        {
            endpoints.Candidates.Add(new Candidate { Address = reflexive.ToString(), Kind = CandidateKind.Stun });
        }
        if (mapped is { } external && !_locals.Contains(external))
        {
            endpoints.Candidates.Add(new Candidate { Address = external.ToString(), Kind = CandidateKind.Portmap });
        }
        if (endpoints.Equals(_published)) return;
        _published = endpoints;
        _control.PublishEndpoints(endpoints);
    }

    /// <summary>What this node last told the coordinator about itself.</summary>
    public Endpoints? PublishedEndpoints
    {
        get
        {
            lock (_gate) return _published;
        }
    }
}
