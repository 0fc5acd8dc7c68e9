"""An independent WebSocket upstream for wsrelay's tests, built on the `websockets` package.

Prints `PORT <n>` once listening on 127.0.0.1, then one JSON line per event it sees (connections, messages
received, closes). The request path chooses the behaviour, e.g. `/feed?count=5&binary=1&fragments=3&close=4000`.
`auth_reply=TEXT&auth_delay_ms=N` answers the first text message (an auth message) with TEXT after N ms and
printing `{"event": "replied"}` just before it sends it.
"""
import asyncio
import json
import sys
from urllib.parse import urlparse, parse_qs

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def handler(ws):
    query = parse_qs(urlparse(ws.request.path).query)
    get = lambda key, default: query.get(key, [default])[0]
    count = int(get("count", "0"))
    binary = get("binary", "0") == "1"
    fragments = int(get("fragments", "1"))
    close = get("close", None)
    auth_reply = get("auth_reply", None)
    auth_delay = int(get("auth_delay_ms", "0")) / 1000
    emit(event="connect", path=ws.request.path,
         authorization=ws.request.headers.get("Authorization"),
         subprotocol=ws.subprotocol)

    tasks = set()

    async def answer_auth():
        await asyncio.sleep(auth_delay)
        emit(event="replied")
        await ws.send(auth_reply)

    async def reader():
        replied = auth_reply is None
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    emit(event="binary", hex=message.hex())
                else:
                    emit(event="text", data=message)
                    if not replied:
                        replied = True
                        # In its own task, so what the client sends meanwhile is recorded before "replied".
                        tasks.add(asyncio.create_task(answer_auth()))
        except ConnectionClosed:
            pass

    read_task = asyncio.create_task(reader())
    for n in range(1, count + 1):
        if binary:
            payload = n.to_bytes(8, "big") + bytes([0xAB]) * 24
        else:
            payload = json.dumps({"n": n, "peer": "python-websockets", "text": "h\u00e9llo \u2603"}, ensure_ascii=False)
        if fragments > 1:
            step = max(1, len(payload) // fragments)
            pieces = [payload[i:i + step] for i in range(0, len(payload), step)]
            await ws.send(pieces)
        else:
            await ws.send(payload)
    if close is not None:
        await ws.close(int(close), "python peer closing")
    await read_task
    emit(event="closed", code=ws.close_code, reason=ws.close_reason)


async def main():
    async with serve(handler, "127.0.0.1", 0, subprotocols=None, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        emit(event="listening", port=port)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
