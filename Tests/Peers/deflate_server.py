"""A permessage-deflate upstream for wsrelay's compression tests, built on the `websockets` package.

Prints `{"event": "listening", "port": N}` once listening on 127.0.0.1, then one JSON line per event (the
extension it agreed on, closes). The request path chooses the server's permessage-deflate configuration:

  /feed?count=20&size=2000                  websockets' default (it accepts the client's offer)
  /feed?deflate=off                         no compression: the offer is declined
  /feed?server_bits=10&client_bits=9&server_nct=1&client_nct=1
                                            server_max_window_bits / client_max_window_bits /
                                            server_no_context_takeover / client_no_context_takeover in the answer
  /bomb?inflated_mib=1024&frame=1024        one binary message of N MiB of zeros, compressed, sent as raw
                                            frames of `frame` compressed bytes each (a compression bomb)

Messages are compressible JSON lines, numbered from 1; then the server waits for the client to close.
"""
import asyncio
import json
import struct
import sys
import zlib
from urllib.parse import urlparse, parse_qs

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def query_of(path):
    query = parse_qs(urlparse(path).query)
    return lambda key, default=None: query.get(key, [default])[0]


def choose_extensions(connection, request):
    """process_request hook: this connection's permessage-deflate configuration, from the path."""
    get = query_of(request.path)
    if get("deflate") == "off":
        connection.protocol.available_extensions = []
        return None
    bits = lambda key: int(get(key)) if get(key) else None
    connection.protocol.available_extensions = [ServerPerMessageDeflateFactory(
        server_no_context_takeover=get("server_nct") == "1",
        client_no_context_takeover=get("client_nct") == "1",
        server_max_window_bits=bits("server_bits"),
        client_max_window_bits=bits("client_bits"),
    )]
    return None


def message(n, size):
    line = {"n": n, "peer": "deflate-server", "type": "trade", "symbol": "BTC-USD", "side": "buy", "pad": ""}
    filler = "price=%d.5 size=0.01 " % (40000 + n)
    line["pad"] = filler * max(0, (size - len(json.dumps(line))) // len(filler))
    return json.dumps(line)


_bombs = {}


def bomb(mib):
    """N MiB of zeros as one raw DEFLATE message body (sync flush, the 00 00 ff ff tail removed)."""
    if mib not in _bombs:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        chunk = bytes(1 << 20)
        body = b"".join(compressor.compress(chunk) for _ in range(mib)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert body.endswith(b"\x00\x00\xff\xff")
        _bombs[mib] = body[:-4]
    return _bombs[mib]


def raw_frame(opcode, payload, fin, rsv1):
    """An unmasked server frame, written past websockets (whose extension would compress it again)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload


async def handler(ws):
    get = query_of(ws.request.path)
    agreed = ws.response.headers.get("Sec-WebSocket-Extensions")
    emit(event="connect", path=ws.request.path, offer=ws.request.headers.get("Sec-WebSocket-Extensions"),
         agreed=agreed)

    try:
        if urlparse(ws.request.path).path == "/bomb":
            body = bomb(int(get("inflated_mib", "1024")))
            step = int(get("frame", "1024"))
            pieces = [body[i:i + step] for i in range(0, len(body), step)]
            emit(event="bomb", compressed=len(body), frames=len(pieces))
            for i, piece in enumerate(pieces):
                ws.transport.write(raw_frame(0x2 if i == 0 else 0x0, piece, fin=i == len(pieces) - 1, rsv1=i == 0))
                if i % 64 == 63:
                    await asyncio.sleep(0)  # let the client's close in
                if ws.transport.is_closing():
                    break
        else:
            for n in range(1, int(get("count", "0")) + 1):
                await ws.send(message(n, int(get("size", "200"))))
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass  # reported below: 1006 when the client's close frame never arrived
    emit(event="closed", path=ws.request.path, code=ws.close_code, reason=ws.close_reason)


async def main():
    async with serve(handler, "127.0.0.1", 0, process_request=choose_extensions, ping_interval=None,
                     max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        emit(event="listening", port=port)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
