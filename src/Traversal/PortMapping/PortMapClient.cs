using System.Net;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;

namespace Mesh.Traversal.PortMapping;

public enum PortMapProtocol
{
    None,
    Pcp,
    NatPmp,
    Upnp,
}

/// <summary>What `mesh-agent status` and `netcheck` show about the router's port mapping.</summary>
public sealed record PortMapStatus(PortMapProtocol Protocol, NetEndpoint? External, string State, string? Failure, TimeSpan? ExpiresIn)
{
    public static string NameOf(PortMapProtocol protocol) => protocol switch
    {
        PortMapProtocol.Pcp => "pcp",
        PortMapProtocol.NatPmp => "nat-pmp",
        PortMapProtocol.Upnp => "upnp",
        _ => "",
    };
}

/// <summary>
/// Asks the gateway to map the agent's UDP port, without I/O: PCP (RFC 6887) first, NAT-PMP (RFC 6886)
/// when the gateway answers PCP with NAT-PMP's "unsupported version" or not at all. Renews at half the
/// granted lifetime, tries again after <see cref="RetryInterval"/> when nothing answered, and deletes the
/// mapping on <see cref="Release"/>. The host sends what <see cref="Poll"/> asks for from the mapped socket
/// and feeds back datagrams that came from <see cref="Server"/>.
/// </summary>
public sealed class PortMapClient
{
    public const uint RequestedLifetime = 7200;
    public static readonly TimeSpan FirstRetransmit = TimeSpan.FromMilliseconds(250);
    public const int Attempts = 4;
    public static readonly TimeSpan RetryInterval = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan ShortestRenewal = TimeSpan.FromSeconds(30);

    private readonly IPAddress _client;
    private readonly ushort _internalPort;
    private readonly byte[] _nonce = new byte[PcpMessage.NonceLength];
    private Phase _phase = Phase.Requesting;
    private int _attempt;
    private TimeSpan _nextSend;
    private TimeSpan _renewAt;
    private TimeSpan _expiresAt;
    private int _dueDatagrams;
    private IPAddress? _natPmpAddress;
    private ushort _natPmpPort;
    private uint _natPmpLifetime;
    private int _deletesLeft;

    public PortMapClient(IPAddress gateway, IPAddress client, int internalPort, IEntropy entropy, TimeSpan now)
    {
        Server = new NetEndpoint(gateway, PcpMessage.Port);
        _client = client;
        _internalPort = (ushort)internalPort;
        entropy.Fill(_nonce);
        _nextSend = now;
    }

    private enum Phase
    {
        Requesting,
        Mapped,
        Unavailable,
        Released,
    }

    /// <summary>The gateway's PCP / NAT-PMP port; only datagrams from here are answers.</summary>
    public NetEndpoint Server { get; }
    public PortMapProtocol Protocol { get; private set; } = PortMapProtocol.Pcp;

    /// <summary>The router's public address and port for the agent's socket while a mapping holds.</summary>
    public NetEndpoint? External { get; private set; }
    public string? Failure { get; private set; }

    public PortMapStatus Status(TimeSpan now) => new(
        External is null ? PortMapProtocol.None : Protocol,
        External,
        _phase switch
        {
            Phase.Mapped => "mapped",
            Phase.Requesting => External is null ? "asking" : "renewing",
            Phase.Released => "released",
            _ => "unavailable",
        },
        Failure,
        External is null ? null : _expiresAt - now);

    /// <summary>Deletes the mapping: the next polls send the delete (twice, since nothing confirms it is needed).</summary>
    public void Release()
    {
        // A request in flight may have made a mapping already; a gateway that never answered has none.
        _deletesLeft = _phase == Phase.Unavailable ? 0 : 2;
        _phase = Phase.Released;
        External = null;
    }

    /// <summary>Renews now: a direct path died, and the mapping may have died with it (the router restarted, say).</summary>
    public void Refresh(TimeSpan now)
    {
        if (_phase == Phase.Mapped) _renewAt = now;
    }

    /// <summary>Writes the next datagram due (if any) for <see cref="Server"/>; returns its length, or 0 when nothing is due.</summary>
    public int Poll(TimeSpan now, Span<byte> output)
    {
        switch (_phase)
        {
            case Phase.Released:
                if (_deletesLeft == 0) return 0;
                _deletesLeft--;
                return WriteMap(output, lifetime: 0);
            case Phase.Unavailable when now >= _nextSend:
                Begin(PortMapProtocol.Pcp, now);
                break;
            case Phase.Mapped when now >= _renewAt:
                _phase = Phase.Requesting;
                _attempt = 0;
                _nextSend = now;
                // Only the renewal's own answer completes it (NAT-PMP keeps the address it already knows).
                _natPmpPort = 0;
                break;
            case Phase.Requesting:
                break;
            default:
                return 0;
        }
        if (External is not null && now >= _expiresAt)
        {
            External = null;
            Failure = "the mapping expired without a renewal";
        }
        if (_dueDatagrams == 0)
        {
            if (now < _nextSend) return 0;
            if (_attempt == Attempts)
            {
                GiveUp(now);
                return _phase == Phase.Requesting ? Poll(now, output) : 0;
            }
            _nextSend = now + FirstRetransmit * (1 << _attempt);
            _attempt++;
            _dueDatagrams = Protocol == PortMapProtocol.NatPmp && _natPmpAddress is null ? 2 : 1;
        }
        _dueDatagrams--;
        if (Protocol == PortMapProtocol.NatPmp && _dueDatagrams == 1) return NatPmpMessage.WriteAddressRequest(output);
        return WriteMap(output, RequestedLifetime);
    }

    /// <summary>Takes a datagram from <see cref="Server"/>; true when it answered this client.</summary>
    public bool OnResponse(ReadOnlySpan<byte> datagram, TimeSpan now)
    {
        if (_phase != Phase.Requesting) return false;
        if (Protocol == PortMapProtocol.Pcp) return OnPcpResponse(datagram, now);
        return OnNatPmpResponse(datagram, now);
    }

    private bool OnPcpResponse(ReadOnlySpan<byte> datagram, TimeSpan now)
    {
        if (NatPmpMessage.IsResponse(datagram))
        {
            // A NAT-PMP-only gateway answers a version-2 request with its own "unsupported version".
            if (NatPmpMessage.ResultOf(datagram) != NatPmpMessage.UnsupportedVersion) return false;
            Begin(PortMapProtocol.NatPmp, now);
            return true;
        }
        if (!PcpMessage.TryReadMap(datagram, out var response)) return false;
        if (response.Result != PcpMessage.Success)
        {
            if (response.Result == PcpMessage.UnsupportedVersion) Begin(PortMapProtocol.NatPmp, now);
            else Fail($"PCP: the gateway refused: {PcpMessage.ResultName(response.Result)}", now);
            return true;
        }
        if (!response.Nonce.Span.SequenceEqual(_nonce) || response.InternalPort != _internalPort) return false;
        Mapped(response.External, response.Lifetime, now);
        return true;
    }

    private bool OnNatPmpResponse(ReadOnlySpan<byte> datagram, TimeSpan now)
    {
        if (NatPmpMessage.TryReadAddress(datagram, out var result, out var address))
        {
            if (result != NatPmpMessage.Success) Fail($"NAT-PMP: the gateway refused: {NatPmpMessage.ResultName(result)}", now);
            else _natPmpAddress = address;
        }
        else if (NatPmpMessage.TryReadMap(datagram, out result, out var internalPort, out var externalPort, out var lifetime))
        {
            if (result != NatPmpMessage.Success)
            {
                Fail($"NAT-PMP: the gateway refused: {NatPmpMessage.ResultName(result)}", now);
                return true;
            }
            if (internalPort != _internalPort) return false;
            _natPmpPort = externalPort;
            _natPmpLifetime = lifetime;
        }
        else return false;
        if (_natPmpAddress is { } external && _natPmpPort != 0) Mapped(new NetEndpoint(external, _natPmpPort), _natPmpLifetime, now);
        return true;
    }

    private int WriteMap(Span<byte> output, uint lifetime)
    {
        if (Protocol == PortMapProtocol.NatPmp) return NatPmpMessage.WriteMapRequest(output, _internalPort, lifetime == 0 ? (ushort)0 : (ushort)(External?.Port ?? _internalPort), lifetime);
        return PcpMessage.WriteMap(output, _client, _nonce, _internalPort, External?.Port ?? _internalPort, lifetime);
    }

    private void Begin(PortMapProtocol protocol, TimeSpan now)
    {
        Protocol = protocol;
        _phase = Phase.Requesting;
        _attempt = 0;
        _dueDatagrams = 0;
        _nextSend = now;
        _natPmpAddress = null;
        _natPmpPort = 0;
    }

    private void Mapped(NetEndpoint external, uint lifetime, TimeSpan now)
    {
        External = external;
        Failure = null;
        _phase = Phase.Mapped;
        _dueDatagrams = 0;
        var granted = TimeSpan.FromSeconds(lifetime);
        _expiresAt = now + granted;
        _renewAt = now + (granted / 2 > ShortestRenewal ? granted / 2 : TimeSpan.FromTicks(Math.Min(ShortestRenewal.Ticks, granted.Ticks)));
    }

    private void GiveUp(TimeSpan now)
    {
        if (Protocol == PortMapProtocol.Pcp && External is null)
        {
            Begin(PortMapProtocol.NatPmp, now);
            return;
        }
        // A gateway that stopped answering has most likely lost the mapping with its state (a restart, a new router).
        Fail(External is null ? $"no PCP or NAT-PMP answer from the gateway {Server.Address}" : $"the gateway {Server.Address} stopped answering renewals", now);
    }

    private void Fail(string reason, TimeSpan now)
    {
        Failure = reason;
        External = null;
        _phase = Phase.Unavailable;
        _dueDatagrams = 0;
        _nextSend = now + RetryInterval;
    }
}
