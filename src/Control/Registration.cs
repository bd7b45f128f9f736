using Google.Protobuf;
using Mesh.Protos.V1;
using Mesh.WireGuard.Keys;

namespace Mesh.Control;

public static class Registration
{
    /// <summary>Asks for a challenge and registers (or logs in) the node key with a proof of possession.</summary>
    public static async Task<RegisterResponse> RegisterAsync(Coordinator.CoordinatorClient client, PrivateKey nodeKey, string authKey, string hostname,
        CancellationToken cancellationToken = default)
    {
        var challenge = await client.GetChallengeAsync(new GetChallengeRequest(), cancellationToken: cancellationToken).ResponseAsync.ConfigureAwait(false);
        var coordinatorKey = new PublicKey(challenge.CoordinatorKey.Span);
        var proof = RegistrationProof.Compute(nodeKey, coordinatorKey, challenge.Nonce.Span, authKey, hostname);
        return await client.RegisterAsync(new RegisterRequest
        {
            NodeKey = ByteString.CopyFrom(nodeKey.PublicKey.Span),
            AuthKey = authKey,
            Hostname = hostname,
            Nonce = challenge.Nonce,
            Proof = ByteString.CopyFrom(proof),
        }, cancellationToken: cancellationToken).ResponseAsync.ConfigureAwait(false);
    }

    /// <summary>A sync stream's hello: a fresh challenge, and the proof over it and the session token that this agent holds the node key.</summary>
    public static async Task<SyncHello> HelloAsync(Coordinator.CoordinatorClient client, PrivateKey nodeKey, string sessionToken, ulong lastSerial, Endpoints? endpoints,
        CancellationToken cancellationToken = default)
    {
        var challenge = await client.GetChallengeAsync(new GetChallengeRequest(), cancellationToken: cancellationToken).ResponseAsync.ConfigureAwait(false);
        var proof = RegistrationProof.ComputeForSync(nodeKey, new PublicKey(challenge.CoordinatorKey.Span), challenge.Nonce.Span, sessionToken);
        return new SyncHello
        {
            LastSerial = lastSerial,
            Endpoints = endpoints,
            NodeKey = ByteString.CopyFrom(nodeKey.PublicKey.Span),
            Nonce = challenge.Nonce,
            Proof = ByteString.CopyFrom(proof),
            MapForm = NetMapView.Form,
        };
    }
}
