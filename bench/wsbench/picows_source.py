"""An independent flood source: a WebSocket server built on picows (PyPI package `picows`, pinned in
bench/run), not on the project's code. Run as its own process: `python -m wsbench.picows_source --port P
--admin-port A`.

It speaks the same small protocol as `wsrelay-sim`'s flood, so every throughput case can use either source:
`ws://127.0.0.1:P/feed?count=N&size=S&hold=1` sends N text messages `{"n":K,"pad":"xx…"}` of S bytes each
(the simulator's payload shape, so JSON escaping costs the same), as fast as the reader takes them; `hold=1`
sends nothing until `POST /release` on the admin port. `GET /stats` answers `{"open":…,"sent":…}`.

Each message is one `WSTransport.send` (picows frames it and hands it to asyncio's transport, which
writes at once while the socket takes it and buffers otherwise); the flood stops at `pause_writing` and
goes on at `resume_writing`, like any well-behaved asyncio server.
"""

import argparse
import asyncio
import json
import time
import urllib.parse

from picows import WSListener, WSMsgType, ws_create_server

# Messages sent per event-loop turn before yielding, so the admin port stays responsive during a flood.
TURN = 512


class SourceState:
    def __init__(self):
        self.open = 0
        self.accepted = 0
        self.sent = 0
        self.released = False
        self.held = []


class Flood(WSListener):
    def __init__(self, state, count, size, hold):
        self.state = state
        self.count = count
        self.size = size
        self.hold = hold
        self.sent = 0
        self.paused = False
        self.running = False
        self.transport = None
        self.loop = asyncio.get_running_loop()
        self.pads = {}

    def payload(self, number):
        head = b'{"n":' + str(number).encode()
        pad = self.pads.get(len(head))
        if pad is None:
            pad = b',"pad":"' + b"x" * max(0, self.size - len(head) - 10) + b'"}'
            self.pads[len(head)] = pad
        return head + pad

    def on_ws_connected(self, transport):
        self.transport = transport
        self.state.open += 1
        self.state.accepted += 1
        if self.hold and not self.state.released:
            self.state.held.append(self)
        else:
            self.start()

    def on_ws_disconnected(self, transport):
        self.state.open -= 1
        self.running = False

    def on_ws_frame(self, transport, frame):
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        if self.running:
            self.loop.call_soon(self.pump)

    def start(self):
        self.running = True
        self.pump()

    def pump(self):
        if not self.running or self.paused:
            return
        send, text, sent = self.transport.send, WSMsgType.TEXT, 0
        while sent < TURN and self.sent < self.count and not self.paused:
            self.sent += 1
            send(text, self.payload(self.sent))
            sent += 1
        self.state.sent += sent
        if self.sent >= self.count:
            self.running = False
        elif not self.paused:
            self.loop.call_soon(self.pump)


def listener_factory(state):
    def make(request):
        url = urllib.parse.urlsplit(request.path.decode())
        if url.path != "/feed":
            return None
        query = dict(urllib.parse.parse_qsl(url.query))
        return Flood(state, int(query.get("count", "1000")), int(query.get("size", "64")), query.get("hold", "0") != "0")
    return make


async def admin(state, reader, writer):
    """Just enough HTTP/1.1 for the harness: GET /stats, POST /release; one request per connection."""
    try:
        request_line = (await reader.readline()).decode()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        method, target = request_line.split()[:2]
        if method == "GET" and target == "/stats":
            body = {"open": state.open, "accepted": state.accepted, "sent": state.sent, "now_ns": time.monotonic_ns()}
            status = "200 OK"
        elif method == "POST" and target == "/release":
            at = time.monotonic_ns()
            state.released = True
            held, state.held = state.held, []
            for flood in held:
                flood.start()
            body, status = {"at_ns": at}, "200 OK"
        else:
            body, status = {"error": f"unknown {method} {target}"}, "404 Not Found"
        data = json.dumps(body).encode()
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + data)
        await writer.drain()
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description="picows flood source for bench/")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    args = parser.parse_args()
    state = SourceState()
    server = await ws_create_server(listener_factory(state), args.host, args.port, max_frame_size=16 * 1024 * 1024)
    admin_server = await asyncio.start_server(lambda r, w: admin(state, r, w), args.host, args.admin_port)
    print(f"picows source on ws://{args.host}:{args.port}, admin on {args.admin_port}", flush=True)
    async with server, admin_server:
        await asyncio.gather(server.serve_forever(), admin_server.serve_forever())


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
