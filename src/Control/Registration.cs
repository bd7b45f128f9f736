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
}
