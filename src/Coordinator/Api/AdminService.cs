using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Mesh.Coordinator.Cluster;
using Mesh.Coordinator.Store;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Api;

/// <summary>What the coordinator tells admins about where agents reach it: STUN servers, the URL to join, the certificate's pin.</summary>
public sealed record Announcement(IReadOnlyList<string> StunServers, string AgentsUrl, string? Pin);

/// <summary>
/// mesh.v1.Admin over the cluster's grains: every call needs `authorization: Bearer &lt;admin API key&gt;`, and any
/// replica answers for the whole cluster. Nodes are shown with their presence from the netmap publisher.
/// </summary>
public sealed class AdminService(IGrainFactory grains, DateTimeOffset started, Func<Announcement> announced)
    : Admin.AdminBase
{
    private IRegistryGrain Registry => grains.GetGrain<IRegistryGrain>(0);
    private IKeyRingGrain Keys => grains.GetGrain<IKeyRingGrain>(0);
    private IPublisherGrain Publisher => grains.GetGrain<IPublisherGrain>(0);

    public override async Task<ListNodesResponse> ListNodes(ListNodesRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        var presence = await PresenceAsync();
        return new ListNodesResponse { Nodes = { (await Registry.List()).Select(n => View(n, presence)) } };
    }

    public override async Task<Node> GetNode(NodeRef request, ServerCallContext context) => await NodeAsync(context, () => Registry.Find(request.Node));

    public override async Task<Node> RenameNode(RenameNodeRequest request, ServerCallContext context) =>
        await NodeAsync(context, () => Registry.Rename(request.Node, request.NewName));

    public override async Task<Node> ApproveNode(NodeRef request, ServerCallContext context) => await NodeAsync(context, () => Registry.Approve(request.Node));

    public override async Task<ListPendingNodesResponse> ListPendingNodes(ListPendingNodesRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        return new ListPendingNodesResponse
        {
            Nodes =
            {
                (await Registry.Pending()).Select(p => new Protos.V1.PendingNode
                {
                    NodeKey = ByteString.CopyFrom(p.NodeKey),
                    Hostname = p.Hostname,
                    Code = p.Code,
                    Since = Timestamp.FromDateTimeOffset(p.Since),
                    Expires = Timestamp.FromDateTimeOffset(p.Expires),
                }),
            },
        };
    }

    public override async Task<Node> ExpireNode(NodeRef request, ServerCallContext context) => await NodeAsync(context, () => Registry.Expire(request.Node));

    public override async Task<DeleteNodeResponse> DeleteNode(NodeRef request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        (await Registry.Delete(request.Node)).OrThrow();
        return new DeleteNodeResponse();
    }

    public override async Task<CreatePreAuthKeyResponse> CreatePreAuthKey(CreatePreAuthKeyRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        if (request.ExpirationSeconds < 0) throw new RpcException(new Status(StatusCode.InvalidArgument, "expiration_seconds must not be negative."));
        var (key, secret) = (await Keys.CreatePreAuthKey(request.Reusable, request.Ephemeral,
            request.ExpirationSeconds > 0 ? TimeSpan.FromSeconds(request.ExpirationSeconds) : null, request.Tags.ToList())).OrThrow();
        var announcement = announced();
        return new CreatePreAuthKeyResponse { Key = View(key), Secret = secret, AgentUrl = announcement.AgentsUrl, TlsPin = announcement.Pin ?? "" };
    }

    public override async Task<ListPreAuthKeysResponse> ListPreAuthKeys(ListPreAuthKeysRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        return new ListPreAuthKeysResponse { Keys = { (await Keys.ListPreAuthKeys()).Select(View) } };
    }

    public override async Task<PreAuthKey> RevokePreAuthKey(RevokePreAuthKeyRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        var key = (await Keys.RevokePreAuthKey(request.Id)).OrThrow();
        if (request.ExpireNodes) (await Registry.ExpireJoinedWith(request.Id)).OrThrow();
        return View(key);
    }

    public override async Task<CreateApiKeyResponse> CreateApiKey(CreateApiKeyRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        var (key, secret) = (await Keys.CreateApiKey()).OrThrow();
        return new CreateApiKeyResponse { Key = View(key), Secret = secret };
    }

    public override async Task<ListApiKeysResponse> ListApiKeys(ListApiKeysRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        return new ListApiKeysResponse { Keys = { (await Keys.ListApiKeys()).Select(View) } };
    }

    public override async Task<ApiKey> RevokeApiKey(KeyRef request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        return View((await Keys.RevokeApiKey(request.Id)).OrThrow());
    }

    public override async Task<ListRelaysResponse> ListRelays(ListRelaysRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        // Every replica's relay, from the publisher that puts them in the map.
        return new ListRelaysResponse { Relays = { (await Publisher.Relays()).ConvertAll(Protos.V1.Relay.Parser.ParseFrom) } };
    }

    public override async Task<CoordinatorStatus> GetStatus(GetStatusRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        var (serial, online) = await Publisher.Status();
        var status = new CoordinatorStatus
        {
            Version = typeof(AdminService).Assembly.GetName().Version?.ToString(3) ?? "",
            NodesTotal = (uint)await Registry.Count(),
            NodesOnline = (uint)online,
            Serial = serial,
            Started = Timestamp.FromDateTimeOffset(started),
        };
        var announcement = announced();
        status.StunServers.AddRange(announcement.StunServers);
        status.AgentUrl = announcement.AgentsUrl;
        status.TlsPin = announcement.Pin ?? "";
        return status;
    }

    private async Task<Node> NodeAsync(ServerCallContext context, Func<Task<Control.Result<NodeRecord>>> call)
    {
        await AuthorizeAsync(context);
        var node = (await call()).OrThrow();
        return View(node, await PresenceAsync());
    }

    private async Task<Dictionary<long, Control.NodePresence>> PresenceAsync() => (await Publisher.Presence()).ToDictionary(p => p.NodeId);

    private async Task AuthorizeAsync(ServerCallContext context)
    {
        var key = Auth.BearerToken(context) ?? throw new RpcException(new Status(StatusCode.Unauthenticated, "Admin calls need `authorization: Bearer <API key>`."));
        if (!await Keys.IsValidApiKey(key)) throw new RpcException(new Status(StatusCode.Unauthenticated, "The API key is not valid or was revoked."));
    }

    private static Node View(NodeRecord node, Dictionary<long, Control.NodePresence> presence)
    {
        var seen = presence.GetValueOrDefault(node.Id);
        return new Node
        {
            Id = (ulong)node.Id,
            Name = node.Name,
            NodeKey = ByteString.CopyFrom(node.NodeKey),
            Addresses = { node.Ipv4, node.Ipv6 },
            State = node.State,
            Online = seen?.Online ?? false,
            Ephemeral = node.Ephemeral,
            Tags = { node.Tags },
            Endpoints = seen is null ? new Endpoints() : Endpoints.Parser.ParseFrom(seen.Endpoints),
            Created = Timestamp.FromDateTime(node.Created),
            LastSeen = node.LastSeen is { } at ? Timestamp.FromDateTime(at) : null,
        };
    }

    private static PreAuthKey View(PreAuthKeyRecord key) => new()
    {
        Id = key.Id,
        Reusable = key.Reusable,
        Ephemeral = key.Ephemeral,
        Tags = { key.Tags },
        Created = Timestamp.FromDateTime(key.Created),
        Expiration = key.Expiration is { } e ? Timestamp.FromDateTime(e) : null,
        Used = key.Used,
        Revoked = key.Revoked,
    };

    private static ApiKey View(ApiKeyRecord key) => new() { Id = key.Id, Created = Timestamp.FromDateTime(key.Created), Revoked = key.Revoked };
}
