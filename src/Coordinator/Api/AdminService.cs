using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Mesh.Coordinator.Cluster;
using Mesh.Coordinator.Store;
using Mesh.Control;
using Mesh.Protos.V1;
using Microsoft.Extensions.Logging;

namespace Mesh.Coordinator.Api;

/// <summary>What the coordinator tells admins about where agents reach it: STUN servers, the URL to join, the certificate's pin.</summary>
public sealed record Announcement(IReadOnlyList<string> StunServers, string AgentsUrl, string? Pin);

/// <summary>
/// mesh.v1.Admin over the cluster's grains: every call needs `authorization: Bearer &lt;admin API key&gt;`, and any
/// replica answers for the whole cluster. Nodes are shown with their presence from the netmap publisher. Every
/// change is written to the audit log (which key, what, on what, from where); a refused key is logged at warning
/// and answered only after <see cref="RefusalDelay"/>, so guessing costs time.
/// </summary>
public sealed class AdminService(IGrainFactory grains, ICoordinatorStore store, DateTimeOffset started, Func<Announcement> announced, TimeProvider time, ILogger logger)
    : Admin.AdminBase
{
    public static readonly TimeSpan RefusalDelay = TimeSpan.FromSeconds(1);
    private const int MaxAuditEntries = 10_000;

    private IRegistryGrain Registry => grains.GetGrain<IRegistryGrain>(0);
    private IKeyRingGrain Keys => grains.GetGrain<IKeyRingGrain>(0);
    private IPublisherGrain Publisher => grains.GetGrain<IPublisherGrain>(0);

    public override async Task<ListNodesResponse> ListNodes(ListNodesRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        var presence = await PresenceAsync();
        var users = await UserNamesAsync();
        return new ListNodesResponse { Nodes = { (await Registry.List()).Select(n => View(n, presence, users)) } };
    }

    public override async Task<Node> GetNode(NodeRef request, ServerCallContext context) => await NodeAsync(context, () => Registry.Find(request.Node));

    public override async Task<Node> RenameNode(RenameNodeRequest request, ServerCallContext context) =>
        await NodeAsync(context, () => Registry.Rename(request.Node, request.NewName), $"nodes rename {request.NewName}");

    public override async Task<Node> ApproveNode(NodeRef request, ServerCallContext context) => await NodeAsync(context, () => Registry.Approve(request.Node), "nodes approve");

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

    public override async Task<Node> ExpireNode(NodeRef request, ServerCallContext context) => await NodeAsync(context, () => Registry.Expire(request.Node), "nodes expire");

    public override async Task<DeleteNodeResponse> DeleteNode(NodeRef request, ServerCallContext context)
    {
        var actor = await AuthorizeAsync(context);
        var node = (await Registry.Delete(request.Node)).OrThrow();
        await AuditAsync(context, actor, "nodes delete", NodeTarget(node));
        return new DeleteNodeResponse();
    }

    public override async Task<User> CreateUser(CreateUserRequest request, ServerCallContext context)
    {
        var actor = await AuthorizeAsync(context);
        var user = (await Keys.CreateUser(request.Name)).OrThrow();
        await AuditAsync(context, actor, "users create", user.Name);
        return View(user);
    }

    public override async Task<ListUsersResponse> ListUsers(ListUsersRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        return new ListUsersResponse { Users = { (await Keys.ListUsers()).Select(View) } };
    }

    public override async Task<User> RenameUser(RenameUserRequest request, ServerCallContext context)
    {
        var actor = await AuthorizeAsync(context);
        var user = (await Keys.RenameUser(request.Name, request.NewName)).OrThrow();
        await AuditAsync(context, actor, "users rename", $"{request.Name} to {user.Name}");
        return View(user);
    }

    public override async Task<DeleteUserResponse> DeleteUser(UserRef request, ServerCallContext context)
    {
        var actor = await AuthorizeAsync(context);
        var owned = await Keys.FindUser(request.Name) is { } known ? await Registry.CountOwnedBy(known.Id) : 0;
        var user = (await Keys.DeleteUser(request.Name, owned)).OrThrow();
        await AuditAsync(context, actor, "users delete", user.Name);
        return new DeleteUserResponse();
    }

    public override async Task<CreatePreAuthKeyResponse> CreatePreAuthKey(CreatePreAuthKeyRequest request, ServerCallContext context)
    {
        var actor = await AuthorizeAsync(context);
        if (request.ExpirationSeconds < 0) throw new RpcException(new Status(StatusCode.InvalidArgument, "expiration_seconds must not be negative."));
        var (key, secret) = (await Keys.CreatePreAuthKey(request.Reusable, request.Ephemeral,
            request.ExpirationSeconds > 0 ? TimeSpan.FromSeconds(request.ExpirationSeconds) : null, request.Tags.ToList(), request.User.Length > 0 ? request.User : null)).OrThrow();
        var users = await UserNamesAsync();
        await AuditAsync(context, actor, "keys create", $"{key.Id} user {users.GetValueOrDefault(key.UserId ?? 0)}{(key.Reusable ? " reusable" : "")}{(key.Ephemeral ? " ephemeral" : "")}{(key.Tags.Count > 0 ? " tags " + string.Join(',', key.Tags) : "")}");
        var announcement = announced();
        return new CreatePreAuthKeyResponse { Key = View(key, users), Secret = secret, AgentUrl = announcement.AgentsUrl, TlsPin = announcement.Pin ?? "" };
    }

    public override async Task<ListPreAuthKeysResponse> ListPreAuthKeys(ListPreAuthKeysRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        var users = await UserNamesAsync();
        return new ListPreAuthKeysResponse { Keys = { (await Keys.ListPreAuthKeys()).Select(k => View(k, users)) } };
    }

    public override async Task<PreAuthKey> RevokePreAuthKey(RevokePreAuthKeyRequest request, ServerCallContext context)
    {
        var actor = await AuthorizeAsync(context);
        var key = (await Keys.RevokePreAuthKey(request.Id)).OrThrow();
        var expired = request.ExpireNodes ? (await Registry.ExpireJoinedWith(request.Id)).OrThrow() : 0;
        await AuditAsync(context, actor, "keys revoke", request.ExpireNodes ? $"{key.Id} and its {expired} nodes" : key.Id);
        return View(key, await UserNamesAsync());
    }

    public override async Task<CreateApiKeyResponse> CreateApiKey(CreateApiKeyRequest request, ServerCallContext context)
    {
        var actor = await AuthorizeAsync(context);
        var (key, secret) = (await Keys.CreateApiKey()).OrThrow();
        await AuditAsync(context, actor, "apikeys create", key.Id);
        return new CreateApiKeyResponse { Key = View(key), Secret = secret };
    }

    public override async Task<ListApiKeysResponse> ListApiKeys(ListApiKeysRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        return new ListApiKeysResponse { Keys = { (await Keys.ListApiKeys()).Select(View) } };
    }

    public override async Task<ApiKey> RevokeApiKey(KeyRef request, ServerCallContext context)
    {
        var actor = await AuthorizeAsync(context);
        var key = (await Keys.RevokeApiKey(request.Id)).OrThrow();
        await AuditAsync(context, actor, "apikeys revoke", key.Id);
        return View(key);
    }

    public override async Task<PolicyInfo> SetPolicy(SetPolicyRequest request, ServerCallContext context)
    {
        var actor = await AuthorizeAsync(context);
        var policy = (await Publisher.SetPolicy(request.Text, actor)).OrThrow();
        await AuditAsync(context, actor, "policy set", $"version {policy.Version}");
        return View(policy);
    }

    public override async Task<PolicyInfo> GetPolicy(GetPolicyRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        return await Publisher.Policy() is { } policy ? View(policy) : new PolicyInfo();
    }

    private static PolicyInfo View(PolicyRecord policy)
    {
        var read = Policy.AclPolicy.Parse(policy.Text);
        return new PolicyInfo
        {
            Text = policy.Text,
            Version = (ulong)policy.Version,
            SetAt = Timestamp.FromDateTime(policy.SetAt),
            Actor = policy.Actor,
            Rules = (uint)(read.Rules?.Count ?? 0),
            Tests = (uint)read.Tests.Count,
        };
    }

    public override async Task<ListAuditResponse> ListAudit(ListAuditRequest request, ServerCallContext context)
    {
        await AuthorizeAsync(context);
        var limit = request.Limit is > 0 and <= MaxAuditEntries ? (int)request.Limit : 100;
        IReadOnlyList<AuditRecord> entries;
        try
        {
            entries = await store.LoadAuditAsync(limit);
        }
        catch (StoreUnavailableException ex)
        {
            throw Control.Problem.StoreDown(ex).ToRpc();
        }
        return new ListAuditResponse
        {
            Entries =
            {
                entries.Select(e => new AuditEntry { Id = (ulong)e.Id, At = Timestamp.FromDateTime(e.At), Actor = e.Actor, Action = e.Action, Target = e.Target, Source = e.Source }),
            },
        };
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

    /// <param name="audited">The action's name in the audit log; null for a read.</param>
    private async Task<Node> NodeAsync(ServerCallContext context, Func<Task<Control.Result<NodeRecord>>> call, string? audited = null)
    {
        var actor = await AuthorizeAsync(context);
        var node = (await call()).OrThrow();
        if (audited is not null) await AuditAsync(context, actor, audited, NodeTarget(node));
        return View(node, await PresenceAsync(), await UserNamesAsync());
    }

    private static string NodeTarget(NodeRecord node) => $"node {node.Id} {node.Name} ({Convert.ToBase64String(node.NodeKey)})";

    /// <summary>Writes the change to the audit log; the change stands even if the log cannot be written, and that is logged.</summary>
    private async Task AuditAsync(ServerCallContext context, string actor, string action, string target)
    {
        try
        {
            await store.InsertAuditAsync(new AuditRecord(0, time.GetUtcNow().UtcDateTime, actor, action, target, Source(context)));
        }
        catch (StoreUnavailableException ex)
        {
            logger.LogWarning("Audit log: {Actor} {Action} {Target} was done but not recorded: {Error}", actor, action, target, ex.Message);
        }
    }

    private static string Source(ServerCallContext context)
    {
        var remote = context.GetHttpContext().Connection.RemoteIpAddress;
        return remote is null ? "local socket" : (remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote).ToString();
    }

    private async Task<Dictionary<long, Control.NodePresence>> PresenceAsync() => (await Publisher.Presence()).ToDictionary(p => p.NodeId);

    /// <summary>The caller's API key id ("key ID" in the audit log); a missing or refused key is logged and answered late.</summary>
    private async Task<string> AuthorizeAsync(ServerCallContext context)
    {
        var key = Auth.BearerToken(context);
        if (key is not null && await Keys.IsValidApiKey(key)) return "key " + Secrets.IdOf(key, Secrets.ApiKeyPrefix);
        logger.LogWarning("Admin call {Method} from {Source} refused: {Reason}", context.Method, Source(context), key is null ? "no API key" : "the API key is not valid or was revoked");
        await Task.Delay(RefusalDelay, time, context.CancellationToken);
        throw new RpcException(new Status(StatusCode.Unauthenticated, key is null ? "Admin calls need `authorization: Bearer <API key>`." : "The API key is not valid or was revoked."));
    }

    private async Task<Dictionary<long, string>> UserNamesAsync() => (await Keys.ListUsers()).ToDictionary(u => u.Id, u => u.Name);

    private static Node View(NodeRecord node, Dictionary<long, Control.NodePresence> presence, Dictionary<long, string> users)
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
            User = users.GetValueOrDefault(node.UserId ?? 0, ""),
            LastSeen = node.LastSeen is { } at ? Timestamp.FromDateTime(at) : null,
        };
    }

    private static User View(UserRecord user) => new() { Id = (ulong)user.Id, Name = user.Name, Created = Timestamp.FromDateTime(user.Created) };

    private static PreAuthKey View(PreAuthKeyRecord key, Dictionary<long, string> users) => new()
    {
        User = users.GetValueOrDefault(key.UserId ?? 0, ""),
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
