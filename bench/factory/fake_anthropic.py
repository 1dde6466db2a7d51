"""A loopback model server speaking Anthropic's Messages API, for
bench/factory_eval.sh in CI: it proves the harness and its arithmetic, not
a model's quality. Each request gets a valid agent for its description
(named from a hash of it); for every fourth description the first answer
has a syntax error, so the repair loop and the first-try count are
exercised. Usage: python3 fake_anthropic.py PORT_FILE
"""

import hashlib
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLEAN = '''"""Keep a run counter and report it."""


def run(ctx):
    """Count this run and return the count."""
    runs = int(ctx.state.get("runs", 0)) + 1
    ctx.state["runs"] = runs
    ctx.log.info("run %d", runs)
    return {"runs": runs}
'''
BROKEN = CLEAN.replace("def run(ctx):", "def run(ctx)")
TEST = '''def test_run(ctx):
    """The counter starts at one."""
    assert run(ctx)["runs"] == 1
'''
calls = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = "".join(
            part.get("text", "") if isinstance(part, dict) else str(part)
            for m in body.get("messages", [])
            for part in (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}])
        )
        found = re.search(r"<request>\s*(.*?)\s*</request>", text, re.S)
        description = found.group(1) if found else text
        digest = hashlib.sha256(description.encode()).hexdigest()
        with lock:
            n = calls.get(digest, 0) + 1
            calls[digest] = n
        broken = int(digest[:8], 16) % 4 == 0 and n == 1
        spec = {
            "name": "eval-" + digest[:10],
            "description": "an agent for the evaluation suite",
            "code": BROKEN if broken else CLEAN,
            "schedule": "every 1h",
            "secrets": [],
            "tools": [],
            "network": False,
            "test": TEST,
        }
        answer = {
            "id": "msg_eval_%s_%d" % (digest[:8], n),
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-sonnet-4-5"),
            "content": [{"type": "text", "text": json.dumps(spec)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1500, "output_tokens": 400},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
