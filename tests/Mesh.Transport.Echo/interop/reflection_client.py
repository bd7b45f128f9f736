"""A stock client that knows nothing of the server's protos: lists services through server reflection (v1alpha,
as grpcurl asks, and v1), fetches the descriptors of the ones it calls from the server itself, and calls
grpc.health.v1.Health/Check and mesh.v1.Coordinator/GetChallenge. Prints one JSON object."""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def message_class(pool, name):
    descriptor = pool.FindMessageTypeByName(name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def reflection_classes(path, package):
    with open(path, "rb") as f:
        file_proto = descriptor_pb2.FileDescriptorProto.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return message_class(pool, f"{package}.ServerReflectionRequest"), message_class(pool, f"{package}.ServerReflectionResponse")


def ask(channel, package, classes, requests):
    request_class, response_class = classes
    call = channel.stream_stream(f"/{package}.ServerReflection/ServerReflectionInfo",
                                 request_serializer=request_class.SerializeToString, response_deserializer=response_class.FromString)
    return list(call(iter([request_class(**r) for r in requests]), timeout=10))


def pool_from_server(channel, package, classes, symbol):
    """A descriptor pool holding the file that defines the symbol and every file it imports, all from the server."""
    (response,) = ask(channel, package, classes, [{"file_containing_symbol": symbol}])
    if response.HasField("error_response"):
        raise RuntimeError(f"{symbol}: {response.error_response.error_message}")
    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in response.file_descriptor_response.file_descriptor_proto]
    pool = descriptor_pool.DescriptorPool()
    added = set()
    while len(added) < len(files):
        for f in files:
            if f.name not in added and all(d in added for d in f.dependency):
                pool.Add(f)
                added.add(f.name)
    return pool


def unary(channel, pool, method, request_name, response_name, **fields):
    request_class, response_class = message_class(pool, request_name), message_class(pool, response_name)
    call = channel.unary_unary(method, request_serializer=request_class.SerializeToString, response_deserializer=response_class.FromString)
    return call(request_class(**fields), timeout=10)


def main():
    target, alpha_path, v1_path = sys.argv[1], sys.argv[2], sys.argv[3]
    result = {}
    with grpc.insecure_channel(target) as channel:
        alpha = reflection_classes(alpha_path, "grpc.reflection.v1alpha")
        v1 = reflection_classes(v1_path, "grpc.reflection.v1")
        for package, classes, key in (("grpc.reflection.v1alpha", alpha, "services_v1alpha"), ("grpc.reflection.v1", v1, "services_v1")):
            (response,) = ask(channel, package, classes, [{"list_services": ""}])
            result[key] = sorted(s.name for s in response.list_services_response.service)

        health_pool = pool_from_server(channel, "grpc.reflection.v1alpha", alpha, "grpc.health.v1.Health")
        health = unary(channel, health_pool, "/grpc.health.v1.Health/Check", "grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse", service="")
        result["health"] = health.DESCRIPTOR.fields_by_name["status"].enum_type.values_by_number[health.status].name

        mesh_pool = pool_from_server(channel, "grpc.reflection.v1alpha", alpha, "mesh.v1.Coordinator")
        challenge = unary(channel, mesh_pool, "/mesh.v1.Coordinator/GetChallenge", "mesh.v1.GetChallengeRequest", "mesh.v1.Challenge")
        result["challenge_fields"] = sorted(f.name for f, _ in challenge.ListFields())
        result["coordinator_key_length"] = len(challenge.coordinator_key)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
