using Google.Protobuf;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Sync;

/// <summary>
/// A serialized full map with STUN servers added, without parsing it: protobuf merges a message's fields across its
/// bytes, so the servers' fields go after the map's and only the map's length in front changes.
/// </summary>
internal static class FullMapBytes
{
    public static byte[] WithStunServers(byte[] response, IReadOnlyList<string> stunServers)
    {
        var input = new CodedInputStream(response);
        if (input.ReadTag() != WireFormat.MakeTag(SyncResponse.FullFieldNumber, WireFormat.WireType.LengthDelimited))
        {
            throw new ArgumentException("Not a serialized full map.", nameof(response));
        }
        var mapLength = input.ReadLength();
        var mapStart = (int)input.Position;
        var stun = new NetMap();
        stun.StunServers.AddRange(stunServers);
        var stunBytes = stun.ToByteArray();
        var total = mapLength + stunBytes.Length;
        var header = 1 + CodedOutputStream.ComputeLengthSize(total);
        var output = new byte[header + total];
        var writer = new CodedOutputStream(output);
        writer.WriteTag(SyncResponse.FullFieldNumber, WireFormat.WireType.LengthDelimited);
        writer.WriteLength(total);
        writer.Flush();
        response.AsSpan(mapStart, mapLength).CopyTo(output.AsSpan(header));
        stunBytes.CopyTo(output.AsSpan(header + mapLength));
        return output;
    }
}
