using System.Diagnostics;
using System.Net;
using Grpc.Core;
using Mesh.Coordinator.Hosting;
using Mesh.Protos.V1;
using Mesh.Transport;

namespace Mesh.Coordinator.Tests;

/// <summary>
/// The coordinator beyond loopback serves TLS even without a certificate (its own, self-signed, kept in the
/// store), clients take it only by its pin, and admin calls live on a listener of their own.
/// </summary>
public sealed class TrustTests : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), $"mesh-coord-{Guid.NewGuid():N}");
    private CoordinatorHost _host = null!;

    /// <summary>Every address, so the listener is not loopback-only; the test itself connects over loopback.</summary>
    private CoordinatorOptions Options => new() { Listen = new IPEndPoint(IPAddress.Any, 0), DataDir = _dataDir, StunPort = 0, RelayPort = 0 };

    private Uri LoopbackUrl => new($"https://127.0.0.1:{_host.GrpcAddress.Port}");

    public async Task InitializeAsync() => _host = await CoordinatorHost.StartAsync(Options);

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        Directory.Delete(_dataDir, recursive: true);
    }

    private static async Task<Challenge> ChallengeAsync(Uri url, ServerTrust trust)
    {
        using var channel = GrpcChannels.ForAddress(url, new HttpConnector(null, trust), Timeout.InfiniteTimeSpan);
        return await new Protos.V1.Coordinator.CoordinatorClient(channel).GetChallengeAsync(new GetChallengeRequest());
    }

    [Fact]
    public async Task BeyondLoopbackItServesTlsWithASelfSignedCertificateThatThePinOpens()
    {
        Assert.Equal("https", _host.GrpcAddress.Scheme);
        Assert.StartsWith(CertificatePin.Prefix, _host.Pin);
        Assert.Equal(32, (await ChallengeAsync(LoopbackUrl, new ServerTrust(Pin: _host.Pin))).CoordinatorKey.Length);
    }

    [Fact]
    public async Task WithoutThePinTheCertificateIsRefusedWithALineThatSaysWhatToPass()
    {
        var refused = await Assert.ThrowsAsync<RpcException>(() => ChallengeAsync(LoopbackUrl, ServerTrust.SystemRoots));
        var line = ServerTrustException.In(refused)?.Message;
        Assert.NotNull(line);
        Assert.DoesNotContain('\n', line);
        Assert.Contains($"--coordinator-pin {_host.Pin}", line);
    }

    [Fact]
    public async Task AnotherPinIsRefusedAsAManInTheMiddle()
    {
        var other = CertificatePin.Prefix + Convert.ToBase64String(new byte[32]);
        var refused = await Assert.ThrowsAsync<RpcException>(() => ChallengeAsync(LoopbackUrl, new ServerTrust(Pin: other)));
        var line = ServerTrustException.In(refused)!.Message;
        Assert.Contains($"pin {_host.Pin}", line);
        Assert.Contains($"not the --coordinator-pin {other}", line);
    }

    [Fact]
    public async Task TheCertificateSurvivesARestart()
    {
        var pin = _host.Pin;
        await _host.DisposeAsync();
        _host = await CoordinatorHost.StartAsync(Options);
        Assert.Equal(pin, _host.Pin);
        await ChallengeAsync(LoopbackUrl, new ServerTrust(Pin: pin));
    }

    [Fact]
    public async Task AdminCallsAreRefusedOnTheAgentsPortAndAgentCallsOnTheAdminSocket()
    {
        using var agents = GrpcChannels.ForAddress(LoopbackUrl, new HttpConnector(null, new ServerTrust(Pin: _host.Pin)), Timeout.InfiniteTimeSpan);
        var key = File.ReadAllText(Path.Combine(_dataDir, CoordinatorOptions.AdminKeyFile)).Trim();
        var onAgents = await Assert.ThrowsAsync<RpcException>(async () =>
            await new Admin.AdminClient(agents.CreateCallInvoker().WithBearerToken(key)).GetStatusAsync(new GetStatusRequest()));
        Assert.Equal(StatusCode.Unimplemented, onAgents.StatusCode);
        Assert.Contains("admin listener", onAgents.Status.Detail);

        Assert.StartsWith("unix:", _host.AdminUrl);
        using var admin = GrpcChannels.ForUnixSocket(_host.AdminUrl["unix:".Length..]);
        var status = await new Admin.AdminClient(admin.CreateCallInvoker().WithBearerToken(key)).GetStatusAsync(new GetStatusRequest());
        Assert.Equal(_host.Pin, status.TlsPin);
        var onAdmin = await Assert.ThrowsAsync<RpcException>(async () => await new Protos.V1.Coordinator.CoordinatorClient(admin).GetChallengeAsync(new GetChallengeRequest()));
        Assert.Equal(StatusCode.Unimplemented, onAdmin.StatusCode);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_host.AdminUrl["unix:".Length..]));
    }

    [Fact]
    public void KeysCreatePrintsTheLineThatJoinsANodeWithThePin()
    {
        var (code, stdout, stderr) = Cli("keys", "create", "--data-dir", _dataDir);
        Assert.Equal(0, code);
        var secret = stdout.Trim();
        Assert.StartsWith("mpk_", secret);
        Assert.Contains($"MESH_AUTH_KEY={secret} mesh-agent up --coordinator https://", stderr);
        Assert.Contains($"--coordinator-pin {_host.Pin}", stderr);
    }

    [Fact]
    public void TheAdminCliRefusesPlaintextToAnotherHostAndAWrongPinInOneLine()
    {
        var (plain, _, plainError) = Cli("status", "--server", "http://192.0.2.1:8443", "--data-dir", _dataDir);
        Assert.Equal(2, plain);
        Assert.Contains("--insecure-plaintext", plainError);
        Assert.Single(plainError.Trim().Split('\n'));

        var wrong = CertificatePin.Prefix + Convert.ToBase64String(new byte[32]);
        var (refused, _, refusedError) = Cli("status", "--server", LoopbackUrl.ToString(), "--coordinator-pin", wrong, "--data-dir", _dataDir);
        Assert.Equal(1, refused);
        Assert.Single(refusedError.Trim().Split('\n'));
        Assert.Contains($"presented a certificate with pin {_host.Pin}", refusedError);

        var (pinned, _, pinnedError) = Cli("status", "--server", LoopbackUrl.ToString(), "--coordinator-pin", _host.Pin!, "--data-dir", _dataDir);
        Assert.Equal(1, pinned);
        Assert.Contains("Unimplemented: Admin calls are served on the coordinator's admin listener", pinnedError);
    }

    [Theory]
    [InlineData("http://127.0.0.1:8443", false, true)]
    [InlineData("http://localhost:8443", false, true)]
    [InlineData("http://[::1]:8443", false, true)]
    [InlineData("https://mesh.example.org:8443", false, true)]
    [InlineData("http://mesh.example.org:8443", false, false)]
    [InlineData("http://192.0.2.1:8443", false, false)]
    [InlineData("http://mesh.example.org:8443", true, true)]
    public void PlaintextGoesOnlyToLoopbackUnlessAskedFor(string url, bool insecure, bool allowed) =>
        Assert.Equal(allowed, PlaintextPolicy.Refusal(new Uri(url), insecure, "--coordinator") is null);

    private static (int Code, string Stdout, string Stderr) Cli(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "mesh-coordinator.dll"));
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr);
    }
}
