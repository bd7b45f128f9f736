using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Mesh.Rpc.Client;
using Mesh.Rpc.Server;
using Mesh.Rpc.Echo;
using Mesh.Rpc.Echo.V1;

namespace Mesh.Rpc.Tests;

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

        await using var server = new GrpcServer().AddService(Echo.V1.Echo.BindService(new EchoService())).Listen(new IPEndPoint(IPAddress.Loopback, 0), certificate);
        await server.StartAsync();
        var address = new UriBuilder(server.Addresses[0]) { Scheme = "https" }.Uri;

        using var trusting = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            ServerCertificateValidation = (_, cert, _, _) => cert is not null && cert.GetCertHashString() == certificate.GetCertHashString(),
        });
        Assert.Equal("tls", (await new Echo.V1.Echo.EchoClient(trusting).UnaryAsync(new EchoRequest { Message = "tls" })).Message);

        using var strict = GrpcChannel.ForAddress(address);
        var ex = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () => await new Echo.V1.Echo.EchoClient(strict).UnaryAsync(new EchoRequest()));
        Assert.Equal(Grpc.Core.StatusCode.Unavailable, ex.StatusCode);
    }
}
