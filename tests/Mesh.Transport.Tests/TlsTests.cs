using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Mesh.Transport.Echo;
using Mesh.Transport.Echo.V1;

namespace Mesh.Transport.Tests;

public sealed class TlsTests
{
    [Fact]
    public async Task CallsOverTlsNegotiateHttp2ByAlpn()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var generated = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        // Kestrel needs a certificate whose private key it can use from a PKCS#12 export.
        using var certificate = X509CertificateLoader.LoadPkcs12(generated.Export(X509ContentType.Pkcs12), null);

        await using var server = await EchoHost.StartTcpAsync(certificate);
        var address = server.Address!;

        using var trusting = GrpcChannels.ForAddress(address, new HttpConnector(null, new ServerTrust(certificate)), Timeout.InfiniteTimeSpan);
        Assert.Equal("tls", (await new Echo.V1.Echo.EchoClient(trusting).UnaryAsync(new EchoRequest { Message = "tls" })).Message);

        using var strict = GrpcChannels.ForAddress(address, new HttpConnector(null), Timeout.InfiniteTimeSpan);
        var ex = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () => await new Echo.V1.Echo.EchoClient(strict).UnaryAsync(new EchoRequest()));
        // Grpc.Net.Client reports a failed TLS handshake as INTERNAL, with the TLS error in the detail.
        Assert.Equal(Grpc.Core.StatusCode.Internal, ex.StatusCode);
        Assert.Contains("SSL", ex.Status.Detail);
    }
}
