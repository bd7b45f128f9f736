using System.Net;
using System.Security.Cryptography;
using Mesh.Coordinator.Store;
using Mesh.WireGuard.Keys;

namespace Mesh.Coordinator.Control;

/// <summary>
/// What makes every replica the same coordinator: its X25519 key (registration proofs, the relays' identity) and
/// the mesh's IPv6 prefix, made once and kept in the store; replicas starting together agree on the first written.
/// </summary>
public sealed class CoordinatorIdentity(PrivateKey key, IPNetwork ipv6Prefix)
{
    public PrivateKey Key { get; } = key;
    public IPNetwork Ipv6Prefix { get; } = ipv6Prefix;

    public static async Task<CoordinatorIdentity> LoadAsync(ICoordinatorStore store, MeshOptions options)
    {
        var fresh = new byte[PrivateKey.Size];
        byte[]? stored = null;
        try
        {
            using (var generated = PrivateKey.Generate()) generated.Export(fresh);
            stored = await store.GetOrAddMetaAsync("coordinator_key", fresh).ConfigureAwait(false);
            var key = PrivateKey.FromBytes(stored);
            var prefix = options.Ipv6Prefix ?? IPNetwork.Parse(System.Text.Encoding.ASCII.GetString(
                await store.GetOrAddMetaAsync("ipv6_prefix", System.Text.Encoding.ASCII.GetBytes(AddressAllocator.RandomUlaPrefix().ToString())).ConfigureAwait(false)));
            return new CoordinatorIdentity(key, prefix);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(fresh);
            if (stored is not null) CryptographicOperations.ZeroMemory(stored);
        }
    }
}
