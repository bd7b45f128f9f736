using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Mesh.Transport;

/// <summary>
/// Which TLS certificates a client takes from the coordinator (and its relays): the system's trusted roots, a
/// private CA's (<c>--ca-cert</c>), or one public key named by its pin (<c>--coordinator-pin sha256:...</c>), the
/// way a self-signed coordinator is trusted. With a pin, only that key is taken, whoever signed the certificate.
/// </summary>
public sealed record ServerTrust(X509Certificate2? Ca = null, string? Pin = null)
{
    /// <summary>The system's roots only.</summary>
    public static readonly ServerTrust SystemRoots = new();

    /// <summary>Whether the handshake may go on; a refusal throws <see cref="ServerTrustException"/> saying what to pass.</summary>
    public bool Validate(string authority, X509Certificate? certificate, SslPolicyErrors errors)
    {
        if (certificate is null) throw new ServerTrustException($"the coordinator at {authority} presented no certificate");
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        var presented = CertificatePin.Of(leaf);
        if (Pin is not null)
        {
            if (CertificatePin.Equal(Pin, presented)) return true;
            throw new ServerTrustException(
                $"the coordinator at {authority} presented a certificate with pin {presented}, not the --coordinator-pin {Pin} given: refused (a man in the middle, or the coordinator's certificate changed)");
        }
        if (errors == SslPolicyErrors.None) return true;
        if (Ca is not null && ChainsTo(leaf, Ca) && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) == 0) return true;
        throw new ServerTrustException(
            $"the coordinator at {authority} presented a certificate this machine does not trust ({Describe(errors)}); if `mesh-coordinator status` on the coordinator shows pin {presented}, pass --coordinator-pin {presented} (or --ca-cert FILE for a private CA)");
    }

    private static bool ChainsTo(X509Certificate2 leaf, X509Certificate2 ca)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(leaf);
    }

    private static string Describe(SslPolicyErrors errors) =>
        (errors & SslPolicyErrors.RemoteCertificateChainErrors) != 0 ? "self-signed or from an unknown CA"
        : (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0 ? "issued for another name"
        : errors.ToString();
}

/// <summary>The coordinator's certificate was refused; the message is one line that says what to pass.</summary>
public sealed class ServerTrustException(string message) : AuthenticationException(message)
{
    /// <summary>The refusal somewhere in an exception's chain (a gRPC status's debug exception included), or null.</summary>
    public static ServerTrustException? In(Exception? exception) => Mesh.Control.ExceptionChain.Find<ServerTrustException>(exception);

    /// <summary>The refusal's line when there is one, else the exception's message.</summary>
    public static string Describe(Exception exception) => In(exception)?.Message ?? exception.Message;
}

/// <summary>
/// A certificate's pin: "sha256:" and the base64 of SHA-256 over its SubjectPublicKeyInfo (as HPKP's pins), so a
/// certificate renewed with the same key keeps its pin.
/// </summary>
public static class CertificatePin
{
    public const string Prefix = "sha256:";

    public static string Of(X509Certificate2 certificate) =>
        Prefix + Convert.ToBase64String(SHA256.HashData(certificate.PublicKey.ExportSubjectPublicKeyInfo()));

    /// <summary>Null when <paramref name="text"/> is a pin; otherwise why not.</summary>
    public static string? Check(string text)
    {
        if (!text.StartsWith(Prefix, StringComparison.Ordinal)) return $"\"{text}\" is not a pin like sha256:BASE64 (see `mesh-coordinator status`)";
        Span<byte> hash = stackalloc byte[40];
        return Convert.TryFromBase64String(text[Prefix.Length..], hash, out var length) && length == 32
            ? null
            : $"\"{text}\" is not a pin: after sha256: comes the base64 of 32 bytes (see `mesh-coordinator status`)";
    }

    public static bool Equal(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(System.Text.Encoding.ASCII.GetBytes(a), System.Text.Encoding.ASCII.GetBytes(b));
}

/// <summary>Where a client may speak without TLS: to loopback, or anywhere the operator said so in so many words.</summary>
public static class PlaintextPolicy
{
    /// <summary>Null when the URL may be used; otherwise the one-line refusal, naming <paramref name="flag"/>.</summary>
    public static string? Refusal(Uri url, bool insecurePlaintext, string flag)
    {
        if (url.Scheme != Uri.UriSchemeHttp || url.IsLoopback || insecurePlaintext) return null;
        return $"{flag}: {url} is plaintext to another host, so keys and the netmap would cross the network in clear; use https:// (the coordinator serves TLS by default), or pass --insecure-plaintext if a TLS proxy sits in front of it";
    }
}
