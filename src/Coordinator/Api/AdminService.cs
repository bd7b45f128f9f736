using Grpc.Core;
using Mesh.Coordinator.Control;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Api;

/// <summary>mesh.v1.Admin: every call needs `authorization: Bearer &lt;admin API key&gt;`.</summary>
public sealed class AdminService(MeshState state, Func<IReadOnlyList<string>> stunServers) : Admin.AdminBase
{
    public override Task<ListNodesResponse> ListNodes(ListNodesRequest request, ServerCallContext context) =>
        Authorized(context, () => new ListNodesResponse { Nodes = { state.ListNodes() } });

    public override Task<Node> GetNode(NodeRef request, ServerCallContext context) => Authorized(context, () => state.GetNode(request.Node));

    public override Task<Node> RenameNode(RenameNodeRequest request, ServerCallContext context) =>
        Authorized(context, () => state.RenameNode(request.Node, request.NewName));

    public override Task<Node> ApproveNode(NodeRef request, ServerCallContext context) => Authorized(context, () => state.ApproveNode(request.Node));

    public override Task<Node> ExpireNode(NodeRef request, ServerCallContext context) => Authorized(context, () => state.ExpireNode(request.Node));

    public override Task<DeleteNodeResponse> DeleteNode(NodeRef request, ServerCallContext context) => Authorized(context, () =>
    {
        state.DeleteNode(request.Node);
        return new DeleteNodeResponse();
    });

    public override Task<CreatePreAuthKeyResponse> CreatePreAuthKey(CreatePreAuthKeyRequest request, ServerCallContext context) => Authorized(context, () =>
    {
        if (request.ExpirationSeconds < 0) throw new RpcException(new Status(StatusCode.InvalidArgument, "expiration_seconds must not be negative."));
        var (key, secret) = state.CreatePreAuthKey(request.Reusable, request.Ephemeral,
            request.ExpirationSeconds > 0 ? TimeSpan.FromSeconds(request.ExpirationSeconds) : null, request.Tags);
        return new CreatePreAuthKeyResponse { Key = key, Secret = secret };
    });

    public override Task<ListPreAuthKeysResponse> ListPreAuthKeys(ListPreAuthKeysRequest request, ServerCallContext context) =>
        Authorized(context, () => new ListPreAuthKeysResponse { Keys = { state.ListPreAuthKeys() } });

    public override Task<PreAuthKey> RevokePreAuthKey(RevokePreAuthKeyRequest request, ServerCallContext context) =>
        Authorized(context, () => state.RevokePreAuthKey(request.Id, request.ExpireNodes));

    public override Task<CreateApiKeyResponse> CreateApiKey(CreateApiKeyRequest request, ServerCallContext context) => Authorized(context, () =>
    {
        var (key, secret) = state.CreateApiKey();
        return new CreateApiKeyResponse { Key = key, Secret = secret };
    });

    public override Task<ListApiKeysResponse> ListApiKeys(ListApiKeysRequest request, ServerCallContext context) =>
        Authorized(context, () => new ListApiKeysResponse { Keys = { state.ListApiKeys() } });

    public override Task<ApiKey> RevokeApiKey(KeyRef request, ServerCallContext context) => Authorized(context, () => state.RevokeApiKey(request.Id));

    public override Task<ListRelaysResponse> ListRelays(ListRelaysRequest request, ServerCallContext context) =>
        Authorized(context, () => new ListRelaysResponse { Relays = { state.Relays } });

    public override Task<CoordinatorStatus> GetStatus(GetStatusRequest request, ServerCallContext context) => Authorized(context, () =>
    {
        var status = state.GetStatus();
        status.StunServers.AddRange(stunServers());
        return status;
    });

    private Task<T> Authorized<T>(ServerCallContext context, Func<T> action)
    {
        var key = Auth.BearerToken(context) ?? throw new RpcException(new Status(StatusCode.Unauthenticated, "Admin calls need `authorization: Bearer <API key>`."));
        if (!state.IsValidApiKey(key)) throw new RpcException(new Status(StatusCode.Unauthenticated, "The API key is not valid or was revoked."));
        return Task.FromResult(action());
    }
}
