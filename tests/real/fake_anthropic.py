#!/usr/bin/env python3
"""A scripted fake of the Anthropic Messages API, for driving a real Claude Code offline.

Standard library only. Listens on 127.0.0.1 only.

    python3 fake_anthropic.py --script script.json --log requests.jsonl [--port 0] [--port-file F]

Serves `POST /v1/messages` (with or without `?beta=true`): Server-Sent Events when the body has
`"stream": true`, one JSON message otherwise. `POST /v1/messages/count_tokens` answers a small
token count; `GET /v1/models` an empty list; any other path `{}` (200), so a client probing
side endpoints never stalls. Every request is appended to the JSONL log, one object a line:

    {"n": 3, "t": 1718000000.1, "method": "POST", "path": "/v1/messages", "query": "beta=true",
     "headers": {...}, "body": {...}, "kind": "main"|"side", "last_text": "...",
     "rule": "<id of the rule that answered, or null>", "reply": [<content blocks sent>]}

`kind` is "main" when the request offers tools (Claude Code's agent loop) and "side" otherwise
(title generation, topic detection, quota probes...). `last_text` is every text found in the messages
after the last assistant message (the new user turn or tool results, plus the `"role": "system"`
messages Claude Code appends to `messages`), joined by newlines.

The script (JSON) is:

    {"rules": [RULE, ...], "default": REPLY, "side_default": REPLY}

Rules are tried in order for every request; the first one whose `when` matches and that still has
uses left answers. A RULE is

    {"id": "b-replies",                 # optional; defaults to "rule<index>"
     "when": {                          # all given conditions must hold
        "kind": "main",                 # "main" (default), "side" or "any"
        "last_contains": "<peer",       # substring of last_text
        "last_regex": "ask_id=\\"(?P<ask_id>[^\\"]+)\\"",  # regex on last_text; named groups
                                        #   (and group 1 as "1") fill {{name}} in the reply
        "body_contains": "...",         # substring of the whole request body (JSON text)
        "body_regex": "...",            # regex on the whole body; groups as above
        "not_contains": "...",          # the body must NOT contain this
        "system_contains": "...",       # substring of the system prompt
        "tool_offered": "mcp__relay__relay_inbox",  # a tool of that name is in `tools`
        "after": ["rule-id", ...],      # these rules have already answered at least once
        "not_after": ["rule-id", ...]   # ...and these have not
     },
     "times": 1,                        # uses (default 1; null = unlimited)
     "delay": 0.0,                      # seconds to wait before answering
     "reply": REPLY}

A REPLY is one of

    {"text": "..."}                                     # a text answer, stop_reason end_turn
    {"tool_use": {"name": "Bash", "input": {...}}}      # one tool call, stop_reason tool_use
    {"content": [{"type": "text", "text": ".."},        # several blocks; tool_use blocks
                 {"type": "tool_use", "name": "..", "input": {..}}]}

Strings in a reply may hold {{name}} placeholders, filled from the regex groups of the rule's
`when` (body_regex, then last_regex). Named groups are also remembered for the rest of the run,
so a later rule's reply may use {{ask_id}} captured by an earlier one. `{{n}}` is the request
number.

Without a matching rule a main request gets `default` (a text "OK." unless set), a side request
`side_default` (a text "Fake session title" unless set).

The fake also answers `GET /_fake/log` (the log so far as a JSON list) and
`POST /_fake/rules` (a JSON list of rules appended to the script at run time).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

DEFAULT_REPLY = {"text": "OK."}
SIDE_DEFAULT_REPLY = {"text": "Fake session title"}
LOGGED_HEADERS = ("user-agent", "anthropic-beta", "anthropic-version", "x-app",
                  "x-claude-code-session-id", "x-stainless-retry-count")


def block_text(block) -> list[str]:
    """The texts held by one content block (or a plain string)."""
    if isinstance(block, str):
        return [block]
    if not isinstance(block, dict):
        return []
    kind = block.get("type")
    if kind == "text":
        return [block.get("text", "")]
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return [content]
        out: list[str] = []
        for inner in content or []:
            out.extend(block_text(inner))
        return out
    return []


def message_text(message) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for block in content or []:
        texts.extend(block_text(block))
    return "\n".join(texts)


def new_text(messages: list) -> str:
    """The text of every message after the last assistant message (the new user turn, tool
    results, and the `system`-role messages Claude Code appends), joined by newlines."""
    tail: list = []
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "assistant":
            break
        tail.append(message)
    return "\n".join(message_text(message) for message in reversed(tail))


def system_text(body) -> str:
    system = body.get("system")
    if isinstance(system, str):
        return system
    return "\n".join(block.get("text", "") for block in system or [] if isinstance(block, dict))


def fill(value, groups: dict):
    """Replace {{name}} placeholders in every string of a JSON value."""
    if isinstance(value, str):
        return re.sub(r"\{\{(\w+)\}\}", lambda m: str(groups.get(m.group(1), m.group(0))), value)
    if isinstance(value, list):
        return [fill(item, groups) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, groups) for key, item in value.items()}
    return value


def reply_blocks(reply: dict) -> list[dict]:
    """The content blocks of a REPLY, with ids given to tool_use blocks."""
    if "content" in reply:
        blocks = [dict(block) for block in reply["content"]]
    elif "tool_use" in reply:
        blocks = [dict(reply["tool_use"], type="tool_use")]
    else:
        blocks = [{"type": "text", "text": reply.get("text", "")}]
    for block in blocks:
        if block["type"] == "tool_use":
            block.setdefault("id", "toolu_" + uuid.uuid4().hex[:24])
            block.setdefault("input", {})
    return blocks


class Script:
    def __init__(self, script: dict):
        self.lock = threading.Lock()
        self.rules: list[dict] = []
        self.fired: dict[str, int] = {}
        self.vars: dict[str, str] = {}
        self.default = script.get("default", DEFAULT_REPLY)
        self.side_default = script.get("side_default", SIDE_DEFAULT_REPLY)
        self.add(script.get("rules", []))

    def add(self, rules: list[dict]) -> None:
        with self.lock:
            for rule in rules:
                rule = dict(rule)
                rule.setdefault("id", f"rule{len(self.rules)}")
                rule["_left"] = rule.get("times", 1)
                self.rules.append(rule)

    def match(self, rule: dict, body: dict, raw: str, kind: str, last: str):
        when = rule.get("when", {})
        wanted_kind = when.get("kind", "main")
        if wanted_kind != "any" and wanted_kind != kind:
            return None
        groups: dict = {}
        if "last_contains" in when and when["last_contains"] not in last:
            return None
        if "body_contains" in when and when["body_contains"] not in raw:
            return None
        if "not_contains" in when and when["not_contains"] in raw:
            return None
        if "system_contains" in when and when["system_contains"] not in system_text(body):
            return None
        if "tool_offered" in when:
            names = {tool.get("name") for tool in body.get("tools") or []}
            if when["tool_offered"] not in names:
                return None
        for needed in when.get("after", []):
            if not self.fired.get(needed):
                return None
        for barred in when.get("not_after", []):
            if self.fired.get(barred):
                return None
        for key, haystack in (("body_regex", raw), ("last_regex", last)):
            if key in when:
                found = re.search(when[key], haystack)
                if not found:
                    return None
                if found.groups():
                    groups.setdefault("1", found.group(1))
                groups.update({k: v for k, v in found.groupdict().items() if v is not None})
        return groups

    def choose(self, body: dict, raw: str, kind: str, last: str, number: int):
        with self.lock:
            for rule in self.rules:
                if rule["_left"] is not None and rule["_left"] <= 0:
                    continue
                groups = self.match(rule, body, raw, kind, last)
                if groups is None:
                    continue
                if rule["_left"] is not None:
                    rule["_left"] -= 1
                self.fired[rule["id"]] = self.fired.get(rule["id"], 0) + 1
                self.vars.update({k: v for k, v in groups.items() if k != "1"})
                values = dict(self.vars, **groups, n=number)
                return rule["id"], fill(rule["reply"], values), float(rule.get("delay", 0))
        return None, (self.default if kind == "main" else self.side_default), 0.0


class Fake:
    def __init__(self, script: Script, log_path: str):
        self.script = script
        self.log_path = log_path
        self.log_lock = threading.Lock()
        self.count = 0
        self.entries: list[dict] = []

    def next_number(self) -> int:
        with self.log_lock:
            self.count += 1
            return self.count

    def log(self, entry: dict) -> None:
        with self.log_lock:
            self.entries.append(entry)
            with open(self.log_path, "a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")


def sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def make_handler(fake: Fake):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-anthropic/1"

        def log_message(self, fmt, *args):  # keep stderr quiet
            pass

        def read_body(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def send_json(self, status: int, value) -> None:
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
            self.end_headers()
            self.wfile.write(data)

        def entry(self, body, raw_text: str, number: int) -> dict:
            url = urlsplit(self.path)
            return {"n": number, "t": time.time(), "method": self.command, "path": url.path,
                    "query": url.query,
                    "headers": {h: self.headers[h] for h in LOGGED_HEADERS if h in self.headers},
                    "body": body if body is not None else raw_text}

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/_fake/log":
                with fake.log_lock:
                    self.send_json(200, list(fake.entries))
                return
            number = fake.next_number()
            fake.log(self.entry(None, "", number))
            if url.path.startswith("/v1/models"):
                self.send_json(200, {"data": [], "has_more": False, "first_id": None,
                                     "last_id": None})
            else:
                self.send_json(200, {})

        def do_HEAD(self):
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_POST(self):
            url = urlsplit(self.path)
            raw = self.read_body()
            raw_text = raw.decode("utf-8", "replace")
            try:
                body = json.loads(raw_text) if raw_text else {}
            except ValueError:
                body = None
            if url.path == "/_fake/rules":
                fake.script.add(body or [])
                self.send_json(200, {"ok": True})
                return
            number = fake.next_number()
            entry = self.entry(body, raw_text, number)
            if url.path.rstrip("/") != "/v1/messages" or not isinstance(body, dict):
                fake.log(entry)
                if url.path.endswith("/count_tokens"):
                    self.send_json(200, {"input_tokens": 1000})
                else:
                    self.send_json(200, {})
                return
            messages = body.get("messages") or []
            kind = "main" if body.get("tools") else "side"
            last = new_text(messages)
            rule, reply, delay = fake.script.choose(body, raw_text, kind, last, number)
            blocks = reply_blocks(reply)
            entry.update(kind=kind, last_text=last, rule=rule, reply=blocks)
            fake.log(entry)
            if delay:
                time.sleep(delay)
            model = body.get("model", "claude-fake")
            stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
            usage = {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0,
                     "cache_read_input_tokens": 0, "service_tier": "standard"}
            message_id = "msg_" + uuid.uuid4().hex[:24]
            if not body.get("stream"):
                self.send_json(200, {"id": message_id, "type": "message", "role": "assistant",
                                     "model": model, "content": blocks, "stop_reason": stop,
                                     "stop_sequence": None, "usage": usage})
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("cache-control", "no-cache")
            self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            start_usage = dict(usage, output_tokens=1)
            events = [sse("message_start", {"type": "message_start", "message": {
                "id": message_id, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": start_usage}})]
            events.append(sse("ping", {"type": "ping"}))
            for index, block in enumerate(blocks):
                if block["type"] == "tool_use":
                    start = {"type": "tool_use", "id": block["id"], "name": block["name"],
                             "input": {}}
                    deltas = [{"type": "input_json_delta",
                               "partial_json": json.dumps(block["input"])}]
                else:
                    start = {"type": "text", "text": ""}
                    text = block.get("text", "")
                    middle = max(1, len(text) // 2)
                    deltas = [{"type": "text_delta", "text": part}
                              for part in (text[:middle], text[middle:]) if part]
                events.append(sse("content_block_start", {"type": "content_block_start",
                                                          "index": index,
                                                          "content_block": start}))
                for delta in deltas:
                    events.append(sse("content_block_delta", {"type": "content_block_delta",
                                                              "index": index, "delta": delta}))
                events.append(sse("content_block_stop", {"type": "content_block_stop",
                                                         "index": index}))
            events.append(sse("message_delta", {"type": "message_delta",
                                                "delta": {"stop_reason": stop,
                                                          "stop_sequence": None},
                                                "usage": {"output_tokens": usage["output_tokens"]}}))
            events.append(sse("message_stop", {"type": "message_stop"}))
            try:
                for event in events:
                    self.wfile.write(event)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def serve(script: dict, log_path: str, port: int = 0):
    """Starts the fake in a daemon thread; returns (server, Fake). server.server_port is the port."""
    fake = Fake(Script(script), log_path)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(fake))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, fake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", help="JSON script file (default: answer OK to everything)")
    parser.add_argument("--log", required=True, help="JSONL file every request is appended to")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free)")
    parser.add_argument("--port-file", help="write the chosen port here once listening")
    args = parser.parse_args()
    script = {}
    if args.script:
        with open(args.script, encoding="utf-8") as source:
            script = json.load(source)
    server, _ = serve(script, args.log, args.port)
    port = server.server_port
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as out:
            out.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
