using System.Buffers;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Grpc.Core;

namespace Mesh.Transport;

/// <summary>
/// Binds generated services (through their BindService(ServiceBinderBase, impl)) for Grpc.AspNetCore's
/// MapGrpcService(ServerServiceDefinition), with two changes to the generated marshallers:
/// a request that does not parse is INVALID_ARGUMENT with the parser's reason (the stack alone says UNKNOWN,
/// "Exception was thrown by handler"), and the responses of the methods picked are serialized once per
/// message instance, so a change fanned out to every subscriber costs one serialization.
/// </summary>
public static class ServiceDefinitions
{
    public static ServerServiceDefinition Bind(Action<ServiceBinderBase> bindService, Func<IMethod, bool>? serializeOnce = null) =>
        Build(binder => BindTo(binder, bindService, serializeOnce));

    /// <summary>Binds a generated service, with the changed marshallers, to any server's binder (the NAT lab has one of its own).</summary>
    public static void BindTo(ServiceBinderBase target, Action<ServiceBinderBase> bindService, Func<IMethod, bool>? serializeOnce = null) =>
        bindService(new WrappingBinder(target, serializeOnce ?? (_ => false)));

    /// <summary>The definition of what <paramref name="bind"/> binds.</summary>
    public static ServerServiceDefinition Build(Action<ServiceBinderBase> bind)
    {
        var builder = ServerServiceDefinition.CreateBuilder();
        bind(new BuilderBinder(builder));
        return builder.Build();
    }

    /// <summary>
    /// A marshaller that serializes a message instance once (or not at all, when its bytes were remembered);
    /// the bytes live as long as the instance does. Instances must not change after they are first sent.
    /// </summary>
    public static Marshaller<T> SerializeOnce<T>(Marshaller<T> inner) where T : class =>
        new((message, context) => context.Complete(Serialized.GetValue(message, m => Serialize(inner, (T)m))), inner.ContextualDeserializer);

    /// <summary>
    /// Sends these bytes, already serialized elsewhere (a delta from another replica), wherever this instance goes
    /// through a serialize-once marshaller; the instance is then only a handle and its fields are not read.
    /// </summary>
    public static void Remember(object message, byte[] bytes) => Serialized.AddOrUpdate(message, bytes);

    /// <summary>The bytes a serialize-once marshaller sends for this instance (for transports that carry no gRPC, such as the NAT lab's).</summary>
    public static byte[] WireBytes(IMessage message) => Serialized.GetValue(message, m => ((IMessage)m).ToByteArray());

    private static readonly ConditionalWeakTable<object, byte[]> Serialized = new();

    /// <summary>A marshaller whose parse failures are RpcExceptions with INVALID_ARGUMENT.</summary>
    public static Marshaller<T> ParseFailuresAsInvalidArgument<T>(Marshaller<T> inner) => new(
        inner.ContextualSerializer,
        context =>
        {
            try
            {
                return inner.ContextualDeserializer(context);
            }
            catch (InvalidProtocolBufferException ex)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"The request is not a valid message: {ex.Message}"));
            }
        });

    private sealed class WrappingBinder(ServiceBinderBase target, Func<IMethod, bool> serializeOnce) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) =>
            target.AddMethod(Wrap(method), handler);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
            target.AddMethod(Wrap(method), handler);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
            target.AddMethod(Wrap(method), handler);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
            target.AddMethod(Wrap(method), handler);

        private Method<TRequest, TResponse> Wrap<TRequest, TResponse>(Method<TRequest, TResponse> method) where TRequest : class where TResponse : class =>
            new(method.Type, method.ServiceName, method.Name,
                ParseFailuresAsInvalidArgument(method.RequestMarshaller),
                serializeOnce(method) ? SerializeOnce(method.ResponseMarshaller) : method.ResponseMarshaller);
    }

    private sealed class BuilderBinder(ServerServiceDefinition.Builder builder) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
        {
            if (handler is not null) builder.AddMethod(method, handler);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler)
        {
            if (handler is not null) builder.AddMethod(method, handler);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler)
        {
            if (handler is not null) builder.AddMethod(method, handler);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler)
        {
            if (handler is not null) builder.AddMethod(method, handler);
        }
    }

    /// <summary>The bytes a marshaller makes of a message (for transports that carry no gRPC, such as the NAT lab's).</summary>
    public static byte[] Serialize<T>(Marshaller<T> inner, T message)
    {
        var capture = new CapturingContext();
        inner.ContextualSerializer(message, capture);
        return capture.Payload ?? throw new InvalidOperationException("The serializer did not complete the message.");
    }

    /// <summary>The message a marshaller reads from these bytes.</summary>
    public static T Deserialize<T>(Marshaller<T> marshaller, byte[] payload) => marshaller.ContextualDeserializer(new PayloadContext(payload));

    private sealed class PayloadContext(byte[] payload) : DeserializationContext
    {
        public override int PayloadLength => payload.Length;

        public override byte[] PayloadAsNewBuffer() => (byte[])payload.Clone();

        public override ReadOnlySequence<byte> PayloadAsReadOnlySequence() => new(payload);
    }

    private sealed class CapturingContext : SerializationContext
    {
        private ArrayBufferWriter<byte>? _writer;

        public byte[]? Payload { get; private set; }

        public override void Complete(byte[] payload) => Payload = payload;

        public override IBufferWriter<byte> GetBufferWriter() => _writer ??= new ArrayBufferWriter<byte>();

        public override void SetPayloadLength(int payloadLength) => _writer ??= new ArrayBufferWriter<byte>(Math.Max(payloadLength, 1));

        public override void Complete() => Payload = _writer!.WrittenSpan.ToArray();
    }
}
