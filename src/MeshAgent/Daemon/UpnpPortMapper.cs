using System.Net;
using System.Net.Sockets;
using System.Text;
using Mesh.Traversal.Paths;
using Mesh.Traversal.PortMapping;
using Mesh.WireGuard.Core;
using Microsoft.Extensions.Logging;

namespace Mesh.Agent.Daemon;

/// <summary>
/// UPnP-IGD for gateways that answer neither PCP nor NAT-PMP: SSDP finds the gateway, its description
/// names the WAN connection service, and SOAP maps the agent's UDP port. Renews at half the lease, gives
/// the mapping up once PCP or NAT-PMP holds one, and deletes it on the way down. The envelopes and parsing
/// are <see cref="UpnpIgd"/>'s; this class only does their I/O. Only the default gateway is believed: SSDP answers
/// from it, URLs on its address, no redirects, bodies of at most <see cref="UpnpIgd.MaxDocument"/> bytes.
/// </summary>
public sealed class UpnpPortMapper(PathEngine engine, int internalPort, ILogger logger) : IDisposable
{
    private const uint Lease = 3600;
    private const string Description = "mesh-agent";
    private static readonly TimeSpan SearchTime = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan RetryInterval = TimeSpan.FromMinutes(5);

    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false })
    {
        Timeout = TimeSpan.FromSeconds(5),
        MaxResponseContentBufferSize = UpnpIgd.MaxDocument,
    };
    private readonly object _gate = new();
    private (IPAddress Gateway, IPAddress Source)? _network;
    private Held? _held;
    private DateTime _nextAttempt = DateTime.MinValue;

    private sealed record Held(UpnpService Service, NetEndpoint External, DateTime RenewAt, DateTime? ExpiresUtc);

    /// <summary>The gateway of the moment: a new one forgets the old mapping (it went with its network).</summary>
    public void SetNetwork(IPAddress? gateway, IPAddress? source)
    {
        var wanted = gateway is not null && source is not null ? (gateway, source) : ((IPAddress, IPAddress)?)null;
        lock (_gate)
        {
            if (Nullable.Equals(wanted, _network)) return;
            _network = wanted;
            _held = null;
            _nextAttempt = DateTime.MinValue;
        }
        engine.SetUpnpMapping(null, null, null);
    }

    public async Task RunAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await StepAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpRequestException or SocketException or TaskCanceledException && !stopping.IsCancellationRequested)
            {
                Failed($"the gateway did not answer over HTTP ({ex.Message})");
            }
            catch (Exception ex) when (!stopping.IsCancellationRequested)
            {
                // Whatever a gateway does must not end the loop: the agent would never map again.
                logger.LogWarning(ex, "UPnP-IGD failed");
                Failed(ex.Message);
            }
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task StepAsync(CancellationToken stopping)
    {
        (IPAddress Gateway, IPAddress Source)? network;
        Held? held;
        lock (_gate)
        {
            network = _network;
            held = _held;
        }
        if (network is not { } current) return;
        if (held is not null)
        {
            // PCP or NAT-PMP came back (a retry succeeded): one mapping is enough.
            if (!engine.PortMapUnavailable && engine.PortMapping?.Protocol is PortMapProtocol.Pcp or PortMapProtocol.NatPmp)
            {
                await DeleteAsync(held, stopping).ConfigureAwait(false);
                return;
            }
            if (DateTime.UtcNow >= held.RenewAt) await MapAsync(current, held.Service, held.External.Port, stopping).ConfigureAwait(false);
            return;
        }
        if (!engine.PortMapUnavailable || DateTime.UtcNow < _nextAttempt) return;
        _nextAttempt = DateTime.UtcNow + RetryInterval;
        var service = await DiscoverAsync(current, stopping).ConfigureAwait(false);
        if (service is not null) await MapAsync(current, service, internalPort, stopping).ConfigureAwait(false);
    }

    private async Task<UpnpService?> DiscoverAsync((IPAddress Gateway, IPAddress Source) network, CancellationToken stopping)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(network.Source, 0));
        socket.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.MulticastInterface, network.Source.GetAddressBytes());
        foreach (var version in new[] { 1, 2 }) await socket.SendToAsync(UpnpIgd.SearchRequest(version), SocketFlags.None, UpnpIgd.SsdpGroup, stopping).ConfigureAwait(false);
        var buffer = new byte[2048];
        using var window = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        window.CancelAfter(SearchTime);
        try
        {
            while (true)
            {
                var received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), window.Token).ConfigureAwait(false);
                // Any LAN host can answer a search: only the gateway is asked for mappings, and only at its own address.
                if (!((IPEndPoint)received.RemoteEndPoint).Address.Equals(network.Gateway)) continue;
                if (!UpnpIgd.TryReadLocation(buffer.AsSpan(0, received.ReceivedBytes), out var location) || !UpnpIgd.IsOnGateway(location!, network.Gateway)) continue;
                using var answer = await _http.GetAsync(location, stopping).ConfigureAwait(false);
                if (!answer.IsSuccessStatusCode)
                {
                    Failed($"the gateway answered {(int)answer.StatusCode} for its description {location}");
                    return null;
                }
                var description = await answer.Content.ReadAsStringAsync(stopping).ConfigureAwait(false);
                var service = UpnpIgd.FindConnectionService(description, location!, network.Gateway, out var problem);
                if (service is not null) return service;
                Failed(problem!);
                return null;
            }
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            Failed($"no UPnP gateway answered the SSDP search within {SearchTime.TotalSeconds:0}s");
            return null;
        }
    }

    private async Task MapAsync((IPAddress Gateway, IPAddress Source) network, UpnpService service, int externalPort, CancellationToken stopping)
    {
        var address = await CallAsync(service, "GetExternalIPAddress", UpnpIgd.GetExternalIPAddress(service), stopping).ConfigureAwait(false);
        if (!address.Succeeded || !IPAddress.TryParse(address.Values.GetValueOrDefault("NewExternalIPAddress"), out var external))
        {
            Failed($"GetExternalIPAddress: {address.Error ?? "no address in the answer"}");
            return;
        }
        var lease = Lease;
        for (var attempt = 0; attempt < 4; attempt++)
        {
            var reply = await CallAsync(service, "AddPortMapping", UpnpIgd.AddPortMapping(service, externalPort, network.Source, internalPort, lease, Description), stopping).ConfigureAwait(false);
            if (reply.Succeeded)
            {
                var now = DateTime.UtcNow;
                var expires = lease == 0 ? (DateTime?)null : now.AddSeconds(lease);
                var held = new Held(service, new NetEndpoint(external, externalPort), now.AddSeconds((lease == 0 ? Lease : lease) / 2.0), expires);
                lock (_gate) _held = held;
                engine.SetUpnpMapping(held.External, expires, null);
                logger.LogInformation("UPnP-IGD: {External} maps to {Client}:{Port}", held.External, network.Source, internalPort);
                return;
            }
            if (reply.ErrorCode == UpnpIgd.OnlyPermanentLeasesSupported && lease != 0) lease = 0;
            else if (reply.ErrorCode == UpnpIgd.ConflictInMappingEntry) externalPort = 1024 + Random.Shared.Next(64512);
            else
            {
                Failed($"AddPortMapping refused: {reply.ErrorCode} {reply.Error}");
                return;
            }
        }
        Failed("AddPortMapping: every external port tried is taken");
    }

    private async Task DeleteAsync(Held held, CancellationToken stopping)
    {
        lock (_gate) _held = null;
        engine.SetUpnpMapping(null, null, null);
        var reply = await CallAsync(held.Service, "DeletePortMapping", UpnpIgd.DeletePortMapping(held.Service, held.External.Port), stopping).ConfigureAwait(false);
        if (!reply.Succeeded) logger.LogWarning("UPnP-IGD: deleting {External}: {Code} {Error}", held.External, reply.ErrorCode, reply.Error);
    }

    private async Task<UpnpReply> CallAsync(UpnpService service, string action, string envelope, CancellationToken stopping)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, service.ControlUrl)
        {
            Content = new StringContent(envelope, Encoding.UTF8, "text/xml"),
        };
        request.Headers.TryAddWithoutValidation("SOAPAction", UpnpIgd.SoapAction(service, action));
        using var response = await _http.SendAsync(request, stopping).ConfigureAwait(false);
        return UpnpIgd.ReadReply(await response.Content.ReadAsStringAsync(stopping).ConfigureAwait(false));
    }

    private void Failed(string reason)
    {
        lock (_gate) _held = null;
        engine.SetUpnpMapping(null, null, reason);
        logger.LogDebug("UPnP-IGD: {Reason}", reason);
    }

    /// <summary>`mesh-agent down`: deletes a held mapping, waiting a few seconds at most.</summary>
    public void Release()
    {
        Held? held;
        lock (_gate) held = _held;
        if (held is null) return;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        try
        {
            DeleteAsync(held, deadline.Token).GetAwaiter().GetResult();
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException or OperationCanceledException)
        {
            logger.LogWarning("UPnP-IGD: deleting {External}: {Message}", held.External, ex.Message);
        }
    }

    public void Dispose() => _http.Dispose();
}
