"""A minimal HTTP CONNECT proxy for wsrelay's tests (127.0.0.1 only).

Prints `{"event": "listening", "port": N}`, then `{"event": "connect", "target": "host:port"}` per tunnel.
Only targets on 127.0.0.1/localhost are allowed; anything else gets 403.
"""
import asyncio
import json
import sys


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].decode()
    method, target, _ = line.split(" ", 2)
    host, port = target.rsplit(":", 1)
    if method != "CONNECT" or host not in ("127.0.0.1", "localhost"):
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
        emit(event="refused", target=target)
        return
    emit(event="connect", target=target)
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(port))
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    emit(event="listening", port=server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
