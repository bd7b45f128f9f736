"""Runs the interop cases with stock grpcio against a server; prints one JSON object per case."""
import json
import sys
import time

import grpc

from echo_common import SERVICE, load_messages

EchoRequest, EchoResponse = load_messages(sys.argv[2])
MIB = 1024 * 1024


def method(channel, kind, name):
    factory = getattr(channel, kind)
    return factory(f"/{SERVICE}/{name}", request_serializer=EchoRequest.SerializeToString, response_deserializer=EchoResponse.FromString)


def case_unary(channel):
    call = method(channel, "unary_unary", "Unary")
    response, rpc = call.with_call(EchoRequest(message="hello"), metadata=(("x-echo", "from python"), ("x-echo-bin", b"\x00\x01\xfe\xff")))
    trailers = dict(rpc.trailing_metadata())
    return {"message": response.message, "echoed_header": response.echoed_header, "bin_trailer": list(trailers.get("x-echo-bin", b""))}


def case_server_stream(channel):
    call = method(channel, "unary_stream", "ServerStream")
    return {"indexes": [r.index for r in call(EchoRequest(message="s", repeat=5))]}


def case_client_stream(channel):
    call = method(channel, "stream_unary", "ClientStream")
    response = call(iter([EchoRequest(message=m, payload=b"12345") for m in ("a", "b", "c")]))
    return {"message": response.message, "bytes": response.index}


def case_duplex(channel):
    call = method(channel, "stream_stream", "Duplex")
    responses = call(iter([EchoRequest(message=f"m{i}") for i in range(5)]))
    return {"messages": [r.message for r in responses]}


def case_deadline(channel):
    method(channel, "unary_unary", "Unary")(EchoRequest(delay_ms=5000), timeout=0.3)


def case_error(channel):
    method(channel, "unary_unary", "Unary")(EchoRequest(fail_code=5, fail_message="no such node: café 100% ☃"))


def case_cancel(channel):
    call = method(channel, "unary_stream", "ServerStream")(EchoRequest(message="c", repeat=100, delay_ms=200))
    next(call)
    call.cancel()
    time.sleep(0.5)
    for _ in call:
        pass


def case_oversized_request(channel):
    method(channel, "unary_unary", "Unary")(EchoRequest(payload=bytes(5 * MIB)))


def case_oversized_response(channel):
    method(channel, "unary_unary", "Unary")(EchoRequest(response_payload_size=5 * MIB))


def case_unknown_method(channel):
    channel.unary_unary(f"/{SERVICE}/Missing", request_serializer=EchoRequest.SerializeToString)(EchoRequest())


CASES = [
    case_unary, case_server_stream, case_client_stream, case_duplex, case_deadline, case_error,
    case_cancel, case_oversized_request, case_oversized_response, case_unknown_method,
]


def main():
    with grpc.insecure_channel(sys.argv[1]) as channel:
        for case in CASES:
            result = {"case": case.__name__[len("case_"):], "code": "OK", "details": ""}
            try:
                result["data"] = case(channel)
            except grpc.RpcError as error:
                result["code"] = error.code().name
                result["details"] = error.details() or ""
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
