"""A colony messaging worker in Python (Debian's python3-redis), no colony code needed.

It reads TaskRequests from the request stream through the consumer group
`colony-workers`, puts the TaskResponse on the reply stream, then acknowledges the
request (docs/executors.md, MESSAGING). Usage:

    python3 examples/workers/messaging_worker.py [request-queue] [reply-queue]

Redis comes from COLONY_REDIS_URL (default redis://127.0.0.1:6379).
"""
import json
import os
import socket
import sys

import redis

REQUESTS = sys.argv[1] if len(sys.argv) > 1 else "formicary-message-ant-request"
REPLIES = sys.argv[2] if len(sys.argv) > 2 else "formicary-message-ant-response"
GROUP = "colony-workers"
CONSUMER = "py-%s-%d" % (socket.gethostname(), os.getpid())

r = redis.Redis.from_url(
    os.environ.get("COLONY_REDIS_URL", "redis://127.0.0.1:6379"), decode_responses=True
)
try:
    r.xgroup_create(REQUESTS, GROUP, id="$", mkstream=True)
except redis.ResponseError as error:
    if "BUSYGROUP" not in str(error):
        raise
print("python messaging worker ready", flush=True)

while True:
    for _stream, entries in r.xreadgroup(GROUP, CONSUMER, {REQUESTS: ">"}, count=10, block=1000) or []:
        for entry_id, fields in entries:
            request = json.loads(fields["payload"])
            # process the request here; then answer with the request's ids and a status
            request["status"] = "COMPLETED"
            request["task_context"] = {"key1": "value1", "worker": "python"}
            r.xadd(REPLIES, {"payload": json.dumps(request)})
            r.xack(REQUESTS, GROUP, entry_id)
