"""The echo test service on stock grpcio. Prints 'PORT n' when serving and 'CANCELLED method' when it sees a cancellation."""
import sys
import time
from concurrent import futures

import grpc

from echo_common import SERVICE, load_messages, status_code

EchoRequest, EchoResponse = load_messages(sys.argv[1])


def log(*words):
    print(*words, flush=True)


def respond(request, context, index):
    metadata = dict(context.invocation_metadata())
    payload = bytes(request.response_payload_size) if request.response_payload_size else request.payload
    return EchoResponse(message=request.message, payload=payload, index=index, echoed_header=metadata.get("x-echo", ""))


def wait(request, context, method):
    deadline = time.monotonic() + request.delay_ms / 1000.0
    while time.monotonic() < deadline:
        if not context.is_active():
            log("CANCELLED", method)
            return False
        time.sleep(0.005)
    return True


def fail(request, context):
    if request.fail_code:
        context.abort(status_code(request.fail_code), request.fail_message)


def unary(request, context):
    if not wait(request, context, "Unary"):
        return EchoResponse()
    fail(request, context)
    binary = dict(context.invocation_metadata()).get("x-echo-bin")
    if binary is not None:
        context.set_trailing_metadata((("x-echo-bin", binary),))
    return respond(request, context, 0)


def server_stream(request, context):
    for index in range(request.repeat):
        if not wait(request, context, "ServerStream"):
            return
        yield respond(request, context, index)
    fail(request, context)


def client_stream(requests, context):
    messages, size = [], 0
    for request in requests:
        messages.append(request.message)
        size += len(request.payload)
    return EchoResponse(message=",".join(messages), index=size)


def duplex(requests, context):
    try:
        for index, request in enumerate(requests):
            if not wait(request, context, "Duplex"):
                return
            fail(request, context)
            yield respond(request, context, index)
    except grpc.RpcError:
        log("CANCELLED", "Duplex")


def main():
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, EchoRequest.FromString, EchoResponse.SerializeToString),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, EchoRequest.FromString, EchoResponse.SerializeToString),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, EchoRequest.FromString, EchoResponse.SerializeToString),
        "Duplex": grpc.stream_stream_rpc_method_handler(duplex, EchoRequest.FromString, EchoResponse.SerializeToString),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    log("PORT", port)
    # Stops when the test closes our stdin.
    sys.stdin.read()
    server.stop(grace=0)


if __name__ == "__main__":
    main()
