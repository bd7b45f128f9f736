using System.Runtime.CompilerServices;

namespace Mesh.Rpc;

/// <summary>
/// Wraps a marshaller so that one message instance sent on many calls (a change fanned out to every
/// subscriber) is serialized once; the bytes live as long as the instance does. Instances must not change after sending.
/// </summary>
public static class SerializeOnceMarshaller
{
    public static Grpc.Core.Marshaller<T> Wrap<T>(Grpc.Core.Marshaller<T> inner) where T : class
    {
        var cache = new ConditionalWeakTable<T, byte[]>();
        return new Grpc.Core.Marshaller<T>(
            (message, context) => context.Complete(cache.GetValue(message, m => Serialize(inner, m))),
            inner.ContextualDeserializer);
    }

    /// <summary>
    /// Binds a service (through its generated BindService(ServiceBinderBase, impl)) with serialize-once
    /// responses for the methods the predicate picks.
    /// </summary>
    public static Grpc.Core.ServerServiceDefinition Bind(Action<Grpc.Core.ServiceBinderBase> bindService, Func<Grpc.Core.IMethod, bool> serializeOnce)
    {
        var builder = Grpc.Core.ServerServiceDefinition.CreateBuilder();
        bindService(new WrappingBinder(builder, serializeOnce));
        return builder.Build();
    }

    private sealed class WrappingBinder(Grpc.Core.ServerServiceDefinition.Builder builder, Func<Grpc.Core.IMethod, bool> serializeOnce) : Grpc.Core.ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Grpc.Core.Method<TRequest, TResponse> method, Grpc.Core.UnaryServerMethod<TRequest, TResponse>? handler)
        {
            if (handler is not null) builder.AddMethod(Wrap(method), handler);
        }

        public override void AddMethod<TRequest, TResponse>(Grpc.Core.Method<TRequest, TResponse> method, Grpc.Core.ClientStreamingServerMethod<TRequest, TResponse>? handler)
        {
            if (handler is not null) builder.AddMethod(Wrap(method), handler);
        }

        public override void AddMethod<TRequest, TResponse>(Grpc.Core.Method<TRequest, TResponse> method, Grpc.Core.ServerStreamingServerMethod<TRequest, TResponse>? handler)
        {
            if (handler is not null) builder.AddMethod(Wrap(method), handler);
        }

        public override void AddMethod<TRequest, TResponse>(Grpc.Core.Method<TRequest, TResponse> method, Grpc.Core.DuplexStreamingServerMethod<TRequest, TResponse>? handler)
        {
            if (handler is not null) builder.AddMethod(Wrap(method), handler);
        }

        private Grpc.Core.Method<TRequest, TResponse> Wrap<TRequest, TResponse>(Grpc.Core.Method<TRequest, TResponse> method) where TResponse : class =>
            serializeOnce(method)
                ? new Grpc.Core.Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, method.RequestMarshaller, SerializeOnceMarshaller.Wrap(method.ResponseMarshaller))
                : method;
    }

    private static byte[] Serialize<T>(Grpc.Core.Marshaller<T> inner, T message)
    {
        var capture = new CapturingContext();
        inner.ContextualSerializer(message, capture);
        return capture.Payload ?? throw new InvalidOperationException("The serializer did not complete the message.");
    }

    private sealed class CapturingContext : Grpc.Core.SerializationContext
    {
        private System.Buffers.ArrayBufferWriter<byte>? _writer;

        public byte[]? Payload { get; private set; }

        public override void Complete(byte[] payload) => Payload = payload;

        public override System.Buffers.IBufferWriter<byte> GetBufferWriter() => _writer ??= new System.Buffers.ArrayBufferWriter<byte>();

        public override void SetPayloadLength(int payloadLength) => _writer ??= new System.Buffers.ArrayBufferWriter<byte>(Math.Max(payloadLength, 1));

        public override void Complete() => Payload = _writer!.WrittenSpan.ToArray();
    }
}
