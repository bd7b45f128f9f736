using System.Text;
using System.Text.Json;

namespace Mesh.Coordinator.Policy;

/// <summary>Where in the policy file something is: 1-based line and column (in characters of the line).</summary>
public readonly record struct TextPosition(int Line, int Column)
{
    public override string ToString() => $"line {Line}, column {Column}";
}

/// <summary>A HuJSON value with where it starts, so a policy's errors can name the line and column at fault.</summary>
public abstract record HuJsonValue(TextPosition At);

public sealed record HuJsonString(TextPosition At, string Value) : HuJsonValue(At);

public sealed record HuJsonNumber(TextPosition At, double Value) : HuJsonValue(At);

public sealed record HuJsonBool(TextPosition At, bool Value) : HuJsonValue(At);

public sealed record HuJsonNull(TextPosition At) : HuJsonValue(At);

public sealed record HuJsonArray(TextPosition At, IReadOnlyList<HuJsonValue> Items) : HuJsonValue(At);

/// <summary>An object's members in file order, each with where its key starts.</summary>
public sealed record HuJsonObject(TextPosition At, IReadOnlyList<(string Key, TextPosition KeyAt, HuJsonValue Value)> Members) : HuJsonValue(At);

/// <summary>A file that is not HuJSON, or a policy that does not hold: the message names the place.</summary>
public sealed class PolicyException(TextPosition at, string message) : Exception($"{at}: {message}")
{
    public TextPosition At { get; } = at;
}

/// <summary>
/// Tailscale's HuJSON: JSON with // and /* */ comments and trailing commas (System.Text.Json's reader takes both),
/// read into a tree that keeps each value's position.
/// </summary>
public static class HuJson
{
    /// <summary>Bounds what a policy may cost to read: 1 MiB of text, nesting as deep as a policy ever needs.</summary>
    public const int MaxBytes = 1 << 20;
    private const int MaxDepth = 16;

    public static HuJsonValue Parse(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Length > MaxBytes) throw new PolicyException(new TextPosition(1, 1), $"the policy is {bytes.Length} bytes; at most {MaxBytes} are taken");
        var lines = new LineIndex(bytes);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, MaxDepth = MaxDepth });
        try
        {
            if (!reader.Read()) throw new PolicyException(new TextPosition(1, 1), "the policy is empty");
            var value = ReadValue(ref reader, lines);
            if (reader.Read()) throw new PolicyException(lines.At(reader.TokenStartIndex), "text after the end of the policy");
            return value;
        }
        catch (JsonException ex)
        {
            throw new PolicyException(new TextPosition((int)(ex.LineNumber ?? 0) + 1, (int)(ex.BytePositionInLine ?? 0) + 1), FirstSentence(ex.Message));
        }
    }

    private static HuJsonValue ReadValue(ref Utf8JsonReader reader, LineIndex lines)
    {
        var at = lines.At(reader.TokenStartIndex);
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
                var members = new List<(string, TextPosition, HuJsonValue)>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                {
                    var keyAt = lines.At(reader.TokenStartIndex);
                    var key = reader.GetString()!;
                    reader.Read();
                    members.Add((key, keyAt, ReadValue(ref reader, lines)));
                }
                return new HuJsonObject(at, members);
            case JsonTokenType.StartArray:
                var items = new List<HuJsonValue>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) items.Add(ReadValue(ref reader, lines));
                return new HuJsonArray(at, items);
            case JsonTokenType.String:
                return new HuJsonString(at, reader.GetString()!);
            case JsonTokenType.Number:
                return new HuJsonNumber(at, reader.GetDouble());
            case JsonTokenType.True:
            case JsonTokenType.False:
                return new HuJsonBool(at, reader.GetBoolean());
            default:
                return new HuJsonNull(at);
        }
    }

    private static string FirstSentence(string message)
    {
        var end = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (end > 0 ? message[..end] : message).TrimEnd('.', ' ');
    }

    /// <summary>Byte offsets to lines and columns (columns count characters, not bytes).</summary>
    private sealed class LineIndex
    {
        private readonly byte[] _text;
        private readonly List<int> _starts = [0];

        public LineIndex(byte[] text)
        {
            _text = text;
            for (var i = 0; i < text.Length; i++)
            {
                if (text[i] == (byte)'\n') _starts.Add(i + 1);
            }
        }

        public TextPosition At(long offset)
        {
            var line = _starts.BinarySearch((int)offset);
            if (line < 0) line = ~line - 1;
            var start = _starts[line];
            return new TextPosition(line + 1, Encoding.UTF8.GetCharCount(_text, start, (int)offset - start) + 1);
        }
    }
}
