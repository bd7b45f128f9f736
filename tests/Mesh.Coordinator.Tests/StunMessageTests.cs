using Mesh.Traversal.Stun;
using Mesh.WireGuard.Core;

namespace Mesh.Coordinator.Tests;

public sealed class StunMessageTests
{
    [Theory]
    [InlineData("203.0.113.9:54321")]
    [InlineData("[2001:db8::5]:443")]
    public void XorMappedAddressRoundTrips(string endpoint)
    {
        var mapped = NetEndpoint.Parse(endpoint);
        var transaction = Enumerable.Range(1, 12).Select(i => (byte)i).ToArray();
        var buffer = new byte[StunMessage.MaxResponseSize];
        var length = StunMessage.WriteBindingSuccess(buffer, transaction, mapped);
        var message = buffer.AsSpan(0, length);
        Assert.Equal(StunParseResult.Ok, StunMessage.Validate(message, new ushort[4], out _));
        Assert.True(StunMessage.TryReadMappedAddress(message, out var read));
        Assert.Equal(mapped, read);
    }

    [Fact]
    public void UnknownComprehensionRequiredAttributesGet420()
    {
        // A request with attribute 0x0777 (comprehension-required, unknown) and no FINGERPRINT.
        var request = new byte[28];
        request[1] = 1;
        request[3] = 8;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(request.AsSpan(4), StunMessage.MagicCookie);
        request[20] = 0x07;
        request[21] = 0x77;
        request[23] = 4;
        var unknown = new ushort[8];
        Assert.Equal(StunParseResult.UnknownAttributes, StunMessage.Validate(request, unknown, out var count));
        var response = new byte[StunMessage.MaxResponseSize];
        var length = Mesh.Traversal.Stun.StunMessage.Answer(request, NetEndpoint.Parse("1.2.3.4:5"), response, unknown);
        Assert.Equal(StunMessage.BindingError, StunMessage.TypeOf(response));
        Assert.Equal(StunParseResult.Ok, StunMessage.Validate(response.AsSpan(0, length), new ushort[4], out _));
        Assert.Equal(1, count);
    }
}
