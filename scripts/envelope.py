#!/usr/bin/env python3
"""Prints an event envelope for `nats pub`: envelope.py EVENT_TYPE TASK_ID ACTOR_ID.

The payload names the actor as the task's creator, so the actor sees the
event in the live feed and its audit record.
"""
import datetime
import json
import os
import sys
import time
import uuid


def uuid7() -> str:
    """A UUID v7 (time-ordered), as the contract asks of event ids."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


event_type, task_id, actor_id = sys.argv[1:4]
now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
print(json.dumps({
    "event_id": uuid7(),
    "event_type": event_type,
    "schema_version": 1,
    "occurred_at": now,
    "task_id": task_id,
    "actor_id": actor_id,
    "correlation_id": "nats-cli",
    "causation_id": None,
    "payload": {
        "task": {"id": task_id, "creator_id": actor_id, "assignee_id": None, "observer_ids": [], "version": 1},
        "changes": {"note": {"old": None, "new": "injected with the nats CLI"}},
    },
}))
