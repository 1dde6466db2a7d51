"""Append a line to a notes file in the agent's own workspace."""

import datetime
import os


def run(ctx):
    """Write one line per run and report how many lines the file holds."""
    path = os.path.join(ctx.workspace, "notes.txt")
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat()
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"run {ctx.run.task_id} attempt {ctx.run.attempt} at {stamp}\n")
    with open(path, encoding="utf-8") as f:
        lines = sum(1 for _ in f)
    return {"lines": lines}
