"""Reads a whole JetStream stream with nats-py (the independent consumer of the JetStream sink tests).

    js_read.py read URL STREAM OUTFILE     -> every stored message's data, one per line, in stream order;
                                              prints {"messages": N, "read": M, "duplicates_seen": D}
    js_read.py leader URL STREAM           -> prints {"leader": "server name"} of an R3 stream
    js_read.py create URL STREAM SUBJECT   -> creates a stream with max_age 1h (for the mismatch test)
"""
import asyncio
import json
import sys

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy


async def retrying(what):
    """A cluster that just lost its stream leader answers nothing until it has elected another: retry,
    at most 20 times, a second apart."""
    for attempt in range(20):
        try:
            return await what()
        except Exception:
            if attempt == 19:
                raise
            await asyncio.sleep(1)


async def read(url, stream, out):
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=5)
    js = nc.jetstream()
    info = await retrying(lambda: js.stream_info(stream))
    total = info.state.messages
    config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL,
                            max_ack_pending=-1, inactive_threshold=60.0)
    subject = info.config.subjects[0]
    sub = await retrying(lambda: js.pull_subscribe(subject, durable=None, stream=stream, config=config))
    got = 0
    with open(out, "wb") as f:
        empty = 0
        while got < total and empty < 3:
            try:
                msgs = await sub.fetch(min(5000, total - got), timeout=5)
            except nats.errors.TimeoutError:
                empty += 1
                continue
            for m in msgs:
                f.write(m.data.replace(b"\n", b" ") + b"\n")
                got += 1
    await nc.close()
    print(json.dumps({"messages": total, "read": got}))


async def leader(url, stream):
    nc = await nats.connect(url, connect_timeout=5)
    js = nc.jetstream()
    info = await js.stream_info(stream)
    print(json.dumps({"leader": info.cluster.leader if info.cluster else None,
                      "messages": info.state.messages}))
    await nc.close()


async def create(url, stream, subject):
    nc = await nats.connect(url, connect_timeout=5)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[subject], max_age=3600.0)
    await nc.close()
    print(json.dumps({"created": stream}))


if __name__ == "__main__":
    if sys.argv[1] == "read":
        asyncio.run(read(sys.argv[2], sys.argv[3], sys.argv[4]))
    elif sys.argv[1] == "create":
        asyncio.run(create(sys.argv[2], sys.argv[3], sys.argv[4]))
    elif sys.argv[1] == "leader":
        asyncio.run(leader(sys.argv[2], sys.argv[3]))
    else:
        sys.exit("usage: js_read.py read URL STREAM OUT | leader URL STREAM")
