"""TCP transfer with a SHA-256 on both ends: `recv HOST PORT` prints '<bytes> <sha256>' once the sender closes;
`send HOST PORT BYTES` sends that many random bytes and prints the same.
UDP sent with GSO (UDP_SEGMENT, so a TUN device with USO gets super-packets): `udprecv HOST PORT COUNT` prints
'<intact> <corrupt>' after COUNT datagrams or 5 s of silence; `udpsend HOST PORT COUNT SIZE` sends COUNT datagrams
of SIZE bytes, 16 per send call, each a sequence number and a SHA-256 of its random payload."""
import hashlib
import os
import socket
import sys
import time

CHUNK = 256 * 1024


def receive(host, port):
    with socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET) as server:
        print("LISTENING", flush=True)
        connection, _ = server.accept()
        digest, total = hashlib.sha256(), 0
        with connection:
            while True:
                data = connection.recv(CHUNK)
                if not data:
                    break
                digest.update(data)
                total += len(data)
        print(total, digest.hexdigest(), flush=True)


def send(host, port, size):
    digest, sent = hashlib.sha256(), 0
    with socket.create_connection((host, port), timeout=60) as connection:
        while sent < size:
            data = os.urandom(min(CHUNK, size - sent))
            connection.sendall(data)
            digest.update(data)
            sent += len(data)
        connection.shutdown(socket.SHUT_WR)
        connection.recv(1)
    print(sent, digest.hexdigest(), flush=True)


UDP_SEGMENT = 103


def udp_receive(host, port, count):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        server.bind((host, port))
        server.settimeout(5)
        print("LISTENING", flush=True)
        intact = corrupt = 0
        seen = set()
        try:
            while intact + corrupt < count:
                data = server.recv(65536)
                sequence, digest, payload = data[:4], data[4:36], data[36:]
                if hashlib.sha256(payload).digest() == digest and sequence not in seen:
                    seen.add(sequence)
                    intact += 1
                else:
                    corrupt += 1
        except socket.timeout:
            pass
        print(intact, corrupt, flush=True)


def udp_send(host, port, count, size):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as client:
        client.connect((host, port))
        client.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, size)
        for first in range(0, count, 16):
            batch = b""
            for sequence in range(first, min(first + 16, count)):
                payload = os.urandom(size - 36)
                batch += sequence.to_bytes(4, "big") + hashlib.sha256(payload).digest() + payload
            client.send(batch)
            time.sleep(0.002)
    print(count, flush=True)


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "recv":
        receive(host, port)
    elif mode == "udprecv":
        udp_receive(host, port, int(sys.argv[4]))
    elif mode == "udpsend":
        udp_send(host, port, int(sys.argv[4]), int(sys.argv[5]))
    else:
        send(host, port, int(sys.argv[4]))
