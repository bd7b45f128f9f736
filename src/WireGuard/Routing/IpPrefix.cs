using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Mesh.WireGuard.Routing;

public static class IpPrefix
{
    /// <summary>
    /// Parses "10.0.0.1/24", "fd00::/64" or a bare address (a /32 or /128). Host bits are cleared, as
    /// WireGuard does ("10.0.0.1/24" is 10.0.0.0/24).
    /// </summary>
    public static bool TryParse(string text, out IPNetwork prefix, out string error)
    {
        prefix = default;
        text = text.Trim();
        var slash = text.IndexOf('/');
        var addressText = slash < 0 ? text : text[..slash];
        if (!IPAddress.TryParse(addressText, out var address) || addressText.Contains('%'))
        {
            error = $"\"{text}\" is not an IP address or prefix (like 10.0.0.0/24 or fd00::/64).";
            return false;
        }
        var max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var length = max;
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > max))
        {
            error = $"\"{text}\" has a prefix length outside 0-{max}.";
            return false;
        }
        prefix = new IPNetwork(Mask(address, length), length);
        error = "";
        return true;
    }

    public static IPNetwork Parse(string text) =>
        TryParse(text, out var prefix, out var error) ? prefix : throw new FormatException(error);

    public static IPAddress Mask(IPAddress address, int length)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var bitsHere = Math.Clamp(length - i * 8, 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - bitsHere));
        }
        return new IPAddress(bytes);
    }
}
