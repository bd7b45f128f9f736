using Mesh.Protos.V1;

namespace Mesh.Control;

/// <summary>A peer's record changed by what the compact form sends of it: its presence, or its grants.</summary>
public static class PeerRecords
{
    /// <summary>A new record with this presence: one that was sent is never changed, a consumer may hold it.</summary>
    public static Peer WithPresence(Peer record, PeerPresence presence)
    {
        var peer = record.Clone();
        peer.Online = presence.Online;
        peer.LastSeen = presence.LastSeen;
        peer.Endpoints = presence.Endpoints;
        return peer;
    }

    /// <summary>Gives the record these grants in place of its own.</summary>
    public static void SetGrants(Peer record, GrantSet grants)
    {
        record.PolicySources.Clear();
        record.PolicySources.AddRange(grants.Sources);
        record.PolicyTargets.Clear();
        record.PolicyTargets.AddRange(grants.Targets);
    }
}
