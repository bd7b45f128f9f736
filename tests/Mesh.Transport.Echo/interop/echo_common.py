"""Message classes for mesh.test.v1 built from a serialized FileDescriptorProto (no code generation)."""
import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE = "mesh.test.v1.Echo"


def load_messages(descriptor_path):
    with open(descriptor_path, "rb") as f:
        file_proto = descriptor_pb2.FileDescriptorProto.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    classes = []
    for name in ("mesh.test.v1.EchoRequest", "mesh.test.v1.EchoResponse"):
        descriptor = pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):
            classes.append(message_factory.GetMessageClass(descriptor))
        else:
            classes.append(message_factory.MessageFactory(pool).GetPrototype(descriptor))
    return classes


def status_code(value):
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    raise ValueError(f"unknown status code {value}")
