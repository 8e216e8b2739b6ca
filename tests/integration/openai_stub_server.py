"""A small OpenAI-protocol server for integration tests: scripted replies over real HTTP.

Run as a process (``python openai_stub_server.py``): it binds 127.0.0.1 on a port the OS picks,
prints ``PORT <n>`` on stdout, and serves until terminated.

Endpoints:

* ``POST /v1/chat/completions``: pops the next scripted reply. A reply is a JSON object with
  optional ``status`` (HTTP status, default 200), ``delay`` (seconds to wait before answering),
  ``headers``, ``usage`` (``[prompt_tokens, completion_tokens]``), ``finish_reason``, and either ``content`` (any
  JSON value, sent as JSON text) or ``raw`` (text sent as is). When the request carries
  ``tools`` the text goes into ``tool_calls[0].function.arguments`` of the first tool, as
  ChatOpenAI's function-calling mode expects; otherwise into ``message.content`` (the
  json_schema / plain-text modes). An exhausted script answers 500.
* ``POST /_script`` ``{"replies": [...]}``: replace the script and clear the log.
  ``{"auto": {"delay": S}}`` instead: answer every request after ``S`` seconds with a reply
  computed from the request alone (see :func:`auto_reply`), a deterministic stand-in for a
  model that many threads can call at once in any order.
* ``GET /_log``: ``{"requests": [request bodies], "usage": [usage reported per 200 reply],
  "pending": replies left}``.
* ``GET /health``: readiness.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Script:
    """The scripted replies and what was asked, shared by the server's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.replies: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.usage: list[dict[str, int]] = []
        self.auto: dict[str, Any] | None = None

    def load(self, replies: list[dict[str, Any]], auto: dict[str, Any] | None = None) -> None:
        with self.lock:
            self.replies = list(replies)
            self.requests = []
            self.usage = []
            self.auto = auto

    def next(self, body: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            self.requests.append(body)
            if self.auto is not None:
                return {"delay": float(self.auto.get("delay", 0)), "raw": auto_reply(body)}
            return self.replies.pop(0) if self.replies else None

    def record_usage(self, usage: dict[str, int]) -> None:
        with self.lock:
            self.usage.append(usage)

    def log(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": list(self.requests),
                "usage": list(self.usage),
                "pending": len(self.replies),
            }


SCRIPT = Script()


def _prompt(body: dict[str, Any]) -> str:
    return "\n".join(
        str(m.get("content") or "") for m in body.get("messages", []) if m.get("role") == "user"
    )


def _after(prompt: str, marker: str) -> str:
    return prompt.rsplit(marker, 1)[1].splitlines()[0].strip() if marker in prompt else ""


def auto_reply(body: dict[str, Any]) -> str:
    """A decision computed from the request alone, like a model at temperature 0: options are
    picked by a hash of the prompt unless a stored preference or answer names one; a request
    with nothing stored and no answer yet is ambiguous; an answer or correction is learned as
    said. Plain-text requests (a simulated user) get a fixed sentence."""
    fmt = body.get("response_format") or {}
    spec = fmt.get("json_schema") or {}
    name, schema = spec.get("name", ""), spec.get("schema") or {}
    prompt = _prompt(body)
    digest = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    props = schema.get("properties", {})

    def options(field: str) -> list[str]:
        prop = props.get(field, {})
        for option in prop.get("anyOf", [prop]):
            if "enum" in option:
                return [str(v) for v in option["enum"]]
            if "const" in option:
                return [str(option["const"])]
        return []

    def pick() -> str:
        ids = options("candidate_id")
        known = prompt.split("Stored preferences", 1)[-1].casefold()
        named = [i for i in ids if i.casefold() in known]
        return named[0] if named else ids[digest % len(ids)]

    if name == "AssessDecision":
        ambiguous = "none yet" in prompt and "You asked during this request" not in prompt
        return json.dumps({
            "reason": "auto",
            "ambiguous": ambiguous,
            "candidate_id": None if ambiguous else pick(),
            "question": "What do you like here?" if ambiguous else "",
        })
    if name == "ChooseDecision":
        return json.dumps({"candidate_id": pick(), "rationale": "auto"})
    if name == "LearnDecision":
        said = _after(prompt, "They answered:") or _after(prompt, "The person corrected you:")
        reply: dict[str, Any] = {"wants": said, "refuses": ""}
        if "revises_memory_id" in props:
            reply["revises_memory_id"] = None
        return json.dumps(reply)
    return "I would like what suits this situation best."


def completion(body: dict[str, Any], reply: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """A chat.completion object for ``reply`` in the mode the request asked for."""
    text = reply["raw"] if "raw" in reply else json.dumps(reply.get("content", ""))
    prompt_tokens, completion_tokens = reply.get("usage", [50, 10])
    usage = {
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(completion_tokens),
        "total_tokens": int(prompt_tokens) + int(completion_tokens),
    }
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = str(reply.get("finish_reason", "stop"))
    tools = body.get("tools") or []
    if tools:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {"name": tools[0]["function"]["name"], "arguments": text},
                }
            ],
        }
        finish = "tool_calls"
    response = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "stub"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }
    return response, usage


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm on, the body waits
    # for the client's delayed ACK (~40 ms a reply), a latency no model server adds.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to do

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"{}")

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"ok": True})
        elif self.path == "/_log":
            self._send(200, SCRIPT.log())
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        body = self._body()
        if self.path == "/_script":
            SCRIPT.load(body.get("replies", []), body.get("auto"))
            self._send(200, {"ok": True})
            return
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        reply = SCRIPT.next(body)
        if reply is None:
            self._send(500, {"error": {"message": "stub script exhausted", "type": "server_error"}})
            return
        time.sleep(float(reply.get("delay", 0)))
        status = int(reply.get("status", 200))
        headers = dict(reply.get("headers", {}))
        if status != 200:
            self._send(
                status,
                {"error": {"message": f"scripted HTTP {status}", "type": "scripted", "code": None}},
                headers,
            )
            return
        response, usage = completion(body, reply)
        SCRIPT.record_usage(usage)
        self._send(200, response, headers)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:  # pragma: no cover
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
