"""TCP transfer with a SHA-256 on both ends: `recv HOST PORT` prints '<bytes> <sha256>' once the sender closes;
`send HOST PORT BYTES` sends that many random bytes and prints the same."""
import hashlib
import os
import socket
import sys

CHUNK = 256 * 1024


def receive(host, port):
    with socket.create_server((host, port)) as server:
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


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "recv":
        receive(host, port)
    else:
        send(host, port, int(sys.argv[4]))
