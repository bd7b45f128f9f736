using Grpc.Core;

namespace Mesh.Rpc.Wire;

/// <summary>Metadata to HTTP/2 header values and back ("-bin" values in base64).</summary>
internal static class MetadataHeaders
{
    public static string ToHeaderValue(Metadata.Entry entry) =>
        entry.IsBinary ? Convert.ToBase64String(entry.ValueBytes).TrimEnd('=') : entry.Value;

    /// <summary>Adds one received header to the metadata; false when it is not valid metadata.</summary>
    public static bool TryAdd(Metadata metadata, string name, string value)
    {
        if (GrpcProtocol.IsReservedHeader(name)) return true;
        try
        {
            if (Metadata.IsBinaryKey(name))
            {
                // One header line may hold several comma-separated binary values.
                foreach (var part in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                {
                    metadata.Add(name, DecodeBase64(part));
                }
            }
            else
            {
                metadata.Add(name, value);
            }
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>Accepts padded and unpadded base64, as the protocol asks.</summary>
    private static byte[] DecodeBase64(string value)
    {
        var padding = (4 - value.Length % 4) % 4;
        if (padding == 3) throw new FormatException("Invalid base64 length.");
        return Convert.FromBase64String(padding == 0 ? value : value + new string('=', padding));
    }
}
