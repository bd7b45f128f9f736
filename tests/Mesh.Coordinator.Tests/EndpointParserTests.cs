using System.Net;
using Mesh.Coordinator.Hosting;

namespace Mesh.Coordinator.Tests;

public sealed class EndpointParserTests
{
    [Theory]
    [InlineData("127.0.0.1:8443", "127.0.0.1:8443")]
    [InlineData("0.0.0.0:1", "0.0.0.0:1")]
    [InlineData("[::1]:8443", "[::1]:8443")]
    [InlineData("[::]:0", "[::]:0")]
    [InlineData("localhost:9000", "127.0.0.1:9000")]
    public void ParsesHostAndPort(string text, string expected)
    {
        Assert.True(EndpointParser.TryParse(text, out var endpoint, out var error), error);
        Assert.Equal(IPEndPoint.Parse(expected), endpoint);
    }

    [Theory]
    [InlineData("8443")]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.1:99999")]
    [InlineData("::1")]
    [InlineData("host.invalid:80")]
    public void RefusesWithAReason(string text)
    {
        Assert.False(EndpointParser.TryParse(text, out _, out var error));
        Assert.NotEmpty(error);
    }
}
