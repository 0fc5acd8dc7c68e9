"""wsrelay benchmark harness (issue #6): flood throughput, latency, idle connections, reconnect storm.

Run through `bench/run`; everything talks to 127.0.0.1 only and every wait is bounded in time.
"""
