"""Load from stock grpcio (asyncio API): prints 'unary <calls/s>' and 'stream <messages/s>'."""
import asyncio
import sys
import time

import grpc

from echo_common import SERVICE, load_messages

TARGET, SECONDS, CONCURRENCY = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
EchoRequest, EchoResponse = load_messages(sys.argv[4])


async def unary_rate(channel, seconds):
    call = channel.unary_unary(f"/{SERVICE}/Unary", request_serializer=EchoRequest.SerializeToString, response_deserializer=EchoResponse.FromString)
    request = EchoRequest(message="bench")
    count = 0
    end = time.monotonic() + seconds

    async def worker():
        nonlocal count
        while time.monotonic() < end:
            await call(request)
            count += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return count / (time.monotonic() - started)


async def stream_rate(channel, seconds):
    call = channel.unary_stream(f"/{SERVICE}/ServerStream", request_serializer=EchoRequest.SerializeToString, response_deserializer=EchoResponse.FromString)
    stream = call(EchoRequest(message="bench", repeat=2**31 - 1))
    count = 0
    started = time.monotonic()
    end = started + seconds
    async for _ in stream:
        count += 1
        if count % 256 == 0 and time.monotonic() >= end:
            break
    elapsed = time.monotonic() - started
    stream.cancel()
    return count / elapsed


async def main():
    async with grpc.aio.insecure_channel(TARGET) as channel:
        await unary_rate(channel, 1.0)
        print(f"unary {await unary_rate(channel, SECONDS):.0f}", flush=True)
        await stream_rate(channel, 0.5)
        print(f"stream {await stream_rate(channel, SECONDS):.0f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
