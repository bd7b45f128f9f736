using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Mesh.Coordinator.Store;

namespace Mesh.Coordinator.Hosting;

/// <summary>
/// Certificates a coordinator makes for itself: ECDSA P-256, self-signed, made on first start and kept in the
/// store, so they survive restarts and every replica of a cluster has the same ones. One serves TLS to agents when
/// the operator gave no certificate (agents trust it by its pin, which `serve` logs and `mesh-coordinator status`
/// and `keys create` print); the other authenticates the replicas of a cluster to each other.
/// </summary>
public static class SelfSignedCertificate
{
    /// <summary>The agents' TLS certificate.</summary>
    public const string AgentsKey = "tls_self_signed";

    /// <summary>The replicas' mutual TLS certificate (Orleans' silo connections).</summary>
    public const string ClusterKey = "cluster_tls";

    private static readonly TimeSpan Lifetime = TimeSpan.FromDays(365 * 20);

    public static async Task<X509Certificate2> LoadOrCreateAsync(ICoordinatorStore store, string metaKey, IEnumerable<string> names)
    {
        var stored = await store.GetMetaAsync(metaKey).ConfigureAwait(false)
            ?? await store.GetOrAddMetaAsync(metaKey, Create(metaKey == ClusterKey ? "mesh-coordinator-cluster" : "mesh-coordinator", names)).ConfigureAwait(false);
        return X509CertificateLoader.LoadPkcs12(stored, null);
    }

    private static byte[] Create(string commonName, IEnumerable<string> names)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        var alternative = new SubjectAlternativeNameBuilder();
        alternative.AddDnsName("localhost");
        foreach (var name in names.Distinct())
        {
            if (IPAddress.TryParse(name, out var address)) alternative.AddIpAddress(address);
            else if (Uri.CheckHostName(name) == UriHostNameType.Dns) alternative.AddDnsName(name);
        }
        request.CertificateExtensions.Add(alternative.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        // Server and client authentication: the cluster's certificate is presented by both ends of a connection.
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now.AddDays(-1), now + Lifetime);
        return certificate.Export(X509ContentType.Pkcs12);
    }
}
