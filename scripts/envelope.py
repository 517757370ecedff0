#!/usr/bin/env python3
"""Prints an event envelope for `nats pub`: envelope.py EVENT_TYPE TASK_ID ACTOR_ID.

EVENT_TYPE is a task event (`task.updated`, ...) or `reminder.due`. The
payload carries a whole task whose creator is the actor, so the actor sees
the event in the live feed and its audit record, and a reminder notifies
them.
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
task = {
    "id": task_id, "project_id": None, "title": "injected with the nats CLI",
    "description": None, "status": "pending", "priority": "medium", "labels": [],
    "creator_id": actor_id, "assignee_id": None, "observer_ids": [],
    "due_date": None, "reminder_time": None, "reminder_offset_minutes": None,
    "recurrence": None, "series_id": None, "version": 1,
    "created_at": now, "updated_at": now, "completed_at": None,
}
if event_type == "reminder.due":
    payload = {"reminder_id": str(uuid.uuid4()), "fire_at": now, "task": task}
else:
    payload = {"task": task, "changes": {"note": {"old": None, "new": "injected with the nats CLI"}}}
print(json.dumps({
    "event_id": uuid7(),
    "event_type": event_type,
    "schema_version": 1,
    "occurred_at": now,
    "task_id": task_id,
    "actor_id": actor_id,
    "correlation_id": "nats-cli",
    "causation_id": None,
    "payload": payload,
}))
