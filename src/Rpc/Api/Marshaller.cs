using System.Buffers;

namespace Grpc.Core;

/// <summary>Turns messages into bytes and back, through contexts that let serializers write in place.</summary>
public sealed class Marshaller<T>
{
    public Marshaller(Action<T, SerializationContext> contextualSerializer, Func<DeserializationContext, T> contextualDeserializer)
    {
        ContextualSerializer = contextualSerializer;
        ContextualDeserializer = contextualDeserializer;
    }

    public Marshaller(Func<T, byte[]> serializer, Func<byte[], T> deserializer)
        : this((message, context) => context.Complete(serializer(message)), context => deserializer(context.PayloadAsNewBuffer()))
    {
    }

    public Action<T, SerializationContext> ContextualSerializer { get; }
    public Func<DeserializationContext, T> ContextualDeserializer { get; }
}

public static class Marshallers
{
    public static Marshaller<T> Create<T>(Func<T, byte[]> serializer, Func<byte[], T> deserializer) => new(serializer, deserializer);

    public static Marshaller<T> Create<T>(Action<T, SerializationContext> serializer, Func<DeserializationContext, T> deserializer) => new(serializer, deserializer);

    public static Marshaller<string> StringMarshaller { get; } = new(
        s => System.Text.Encoding.UTF8.GetBytes(s),
        b => System.Text.Encoding.UTF8.GetString(b));
}

/// <summary>Where a serializer writes one message: either a whole array or through a buffer writer.</summary>
public abstract class SerializationContext
{
    public abstract void Complete(byte[] payload);

    public abstract IBufferWriter<byte> GetBufferWriter();

    public abstract void SetPayloadLength(int payloadLength);

    public abstract void Complete();
}

/// <summary>One received message's payload, for a deserializer.</summary>
public abstract class DeserializationContext
{
    public abstract int PayloadLength { get; }

    public abstract byte[] PayloadAsNewBuffer();

    public abstract ReadOnlySequence<byte> PayloadAsReadOnlySequence();
}
