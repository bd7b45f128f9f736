namespace Mesh.Coordinator.Store;

/// <summary>How both stores write times, tags and the coordinator-wide values, so their rows mean the same.</summary>
internal static class StoreFormats
{
    public const string AddressCounterKey = "address_counter";

    public static long ToUnix(DateTime time) => new DateTimeOffset(time.ToUniversalTime()).ToUnixTimeMilliseconds();

    public static DateTime FromUnix(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime;

    public static string JoinTags(IReadOnlyList<string> tags) => string.Join(',', tags);

    public static IReadOnlyList<string> SplitTags(string tags) => tags.Split(',', StringSplitOptions.RemoveEmptyEntries);
}
