#!/usr/bin/env python3
"""A scripted fake of the OpenAI Chat Completions API, for driving a real OpenCode offline.

Standard library only. Listens on 127.0.0.1 only. The style and the rule format follow
fake_anthropic.py; OpenCode reaches it through a provider with `"npm":
"@ai-sdk/openai-compatible"` and `"options": {"baseURL": "http://127.0.0.1:<port>/v1"}`.

    python3 fake_openai_chat.py --script script.json --log requests.jsonl [--port 0] [--port-file F]

Serves `POST /v1/chat/completions` (also without `/v1`): Server-Sent Events (`data: {chunk}`
lines, then `data: [DONE]`) when the body has `"stream": true`, one JSON completion otherwise.
`GET /v1/models` lists one model (`fake-model`); any other path `{}` (200). Every request is
appended to the JSONL log, one object a line:

    {"n": 3, "t": 1718000000.1, "method": "POST", "path": "/v1/chat/completions",
     "headers": {...}, "body": {...}, "kind": "main"|"side", "last_text": "...",
     "rule": "<id of the rule that answered, or null>", "reply": {"text": .., "tool_calls": [..]}}

`kind` is "main" when the request offers `tools` (the agent loop) and "side" otherwise (title
generation and the like). `last_text` is every text of the messages after the last assistant
message (the new user turn and `tool` results; not the system messages), joined by newlines.

The script (JSON) is `{"rules": [RULE, ...], "default": REPLY, "side_default": REPLY}`; rules are
tried in order, the first whose `when` holds and that has uses left answers. A RULE is

    {"id": "wake",                      # optional; defaults to "rule<index>"
     "when": {                          # all given conditions must hold
        "kind": "main",                 # "main" (default), "side" or "any"
        "last_contains": "PING",        # substring of last_text
        "last_regex": "msg_id=\\"(?P<msg>[^\\"]+)\\"",  # regex on last_text; named groups
                                        #   (and group 1 as "1") fill {{name}} in the reply
        "body_contains": "...", "body_regex": "...", "not_contains": "...",
        "system_contains": "...",       # substring of the system message(s)
        "tool_offered": "relay_relay_peers",   # a function of that name is in `tools`
        "after": ["rule-id"], "not_after": ["rule-id"]
     },
     "times": 1,                        # uses (default 1; null = unlimited)
     "delay": 0.0,                      # seconds to wait before answering
     "reply": REPLY}

A REPLY is one of

    {"text": "..."}                                           # finish_reason "stop"
    {"tool_call": {"name": "relay_relay_peers", "arguments": {...}}}   # finish_reason "tool_calls"
    {"text": "..", "tool_calls": [{"name": .., "arguments": {..}}, ...]}

Strings in a reply may hold {{name}} placeholders (regex groups of this rule, and groups
remembered from earlier rules); `{{n}}` is the request number. Without a matching rule a main
request gets `default` (text "OK." unless set), a side request `side_default` (text "Fake
title"). `GET /_fake/log` returns the log so far; `POST /_fake/rules` appends a JSON list of
rules at run time.
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
SIDE_DEFAULT_REPLY = {"text": "Fake title"}
LOGGED_HEADERS = ("user-agent", "authorization", "x-session-affinity", "x-opencode-session",
                  "x-opencode-project", "x-opencode-request", "x-opencode-client")
MODEL = "fake-model"


def message_text(message) -> str:
    """The text of one chat message: a string content, or the text parts of a list."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    texts = []
    for part in content or []:
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(part.get("text", ""))
        elif isinstance(part, str):
            texts.append(part)
    return "\n".join(texts)


def new_text(messages: list) -> str:
    """The text of every message after the last assistant message, joined by newlines (the
    system messages left out: they lead every request)."""
    tail = []
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "assistant":
            break
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            continue
        tail.append(message)
    return "\n".join(message_text(message) for message in reversed(tail))


def system_text(body: dict) -> str:
    return "\n".join(message_text(m) for m in body.get("messages") or []
                     if isinstance(m, dict) and m.get("role") in ("system", "developer"))


def tool_names(body: dict) -> set:
    names = set()
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            names.add((tool.get("function") or {}).get("name") or tool.get("name"))
    return names


def fill(value, groups: dict):
    """Replace {{name}} placeholders in every string of a JSON value."""
    if isinstance(value, str):
        return re.sub(r"\{\{(\w+)\}\}", lambda m: str(groups.get(m.group(1), m.group(0))), value)
    if isinstance(value, list):
        return [fill(item, groups) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, groups) for key, item in value.items()}
    return value


def normalize(reply: dict) -> dict:
    """A REPLY as {"text": str, "tool_calls": [{"id", "name", "arguments": <JSON text>}]}."""
    calls = list(reply.get("tool_calls") or [])
    if "tool_call" in reply:
        calls.insert(0, reply["tool_call"])
    out = []
    for call in calls:
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        out.append({"id": call.get("id") or "call_" + uuid.uuid4().hex[:20],
                    "name": call["name"], "arguments": arguments})
    return {"text": reply.get("text", ""), "tool_calls": out}


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
        wanted = when.get("kind", "main")
        if wanted != "any" and wanted != kind:
            return None
        if "last_contains" in when and when["last_contains"] not in last:
            return None
        if "body_contains" in when and when["body_contains"] not in raw:
            return None
        if "not_contains" in when and when["not_contains"] in raw:
            return None
        if "system_contains" in when and when["system_contains"] not in system_text(body):
            return None
        if "tool_offered" in when and when["tool_offered"] not in tool_names(body):
            return None
        if any(not self.fired.get(needed) for needed in when.get("after", [])):
            return None
        if any(self.fired.get(barred) for barred in when.get("not_after", [])):
            return None
        groups: dict = {}
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
        self.lock = threading.Lock()
        self.count = 0
        self.entries: list[dict] = []

    def next_number(self) -> int:
        with self.lock:
            self.count += 1
            return self.count

    def log(self, entry: dict) -> None:
        with self.lock:
            self.entries.append(entry)
            with open(self.log_path, "a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")


def chunk(completion_id: str, created: int, delta: dict, finish=None, usage=None) -> bytes:
    data = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": MODEL, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        data["usage"] = usage
    return f"data: {json.dumps(data)}\n\n".encode()


def make_handler(fake: Fake):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-openai-chat/1"

        def log_message(self, fmt, *args):  # keep stderr quiet
            pass

        def send_json(self, status: int, value) -> None:
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def entry(self, body, raw_text: str, number: int) -> dict:
            return {"n": number, "t": time.time(), "method": self.command,
                    "path": urlsplit(self.path).path,
                    "headers": {h: self.headers[h] for h in LOGGED_HEADERS if h in self.headers},
                    "body": body if body is not None else raw_text}

        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/_fake/log":
                with fake.lock:
                    self.send_json(200, list(fake.entries))
                return
            fake.log(self.entry(None, "", fake.next_number()))
            if path.rstrip("/").endswith("/models"):
                self.send_json(200, {"object": "list", "data": [
                    {"id": MODEL, "object": "model", "created": 0, "owned_by": "fake"}]})
            else:
                self.send_json(200, {})

        def do_POST(self):
            path = urlsplit(self.path).path
            length = int(self.headers.get("content-length") or 0)
            raw_text = (self.rfile.read(length) if length else b"").decode("utf-8", "replace")
            try:
                body = json.loads(raw_text) if raw_text else {}
            except ValueError:
                body = None
            if path == "/_fake/rules":
                fake.script.add(body or [])
                self.send_json(200, {"ok": True})
                return
            number = fake.next_number()
            entry = self.entry(body, raw_text, number)
            if not path.rstrip("/").endswith("/chat/completions") or not isinstance(body, dict):
                fake.log(entry)
                self.send_json(200, {})
                return
            kind = "main" if body.get("tools") else "side"
            last = new_text(body.get("messages") or [])
            rule, reply, delay = fake.script.choose(body, raw_text, kind, last, number)
            reply = normalize(reply)
            entry.update(kind=kind, last_text=last, rule=rule, reply=reply)
            fake.log(entry)
            if delay:
                time.sleep(delay)
            self.answer(body, reply)

        def answer(self, body: dict, reply: dict) -> None:
            completion_id = "chatcmpl-" + uuid.uuid4().hex[:24]
            created = int(time.time())
            calls = reply["tool_calls"]
            finish = "tool_calls" if calls else "stop"
            usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
            if not body.get("stream"):
                message = {"role": "assistant", "content": reply["text"] or None}
                if calls:
                    message["tool_calls"] = [
                        {"id": c["id"], "type": "function",
                         "function": {"name": c["name"], "arguments": c["arguments"]}}
                        for c in calls]
                self.send_json(200, {"id": completion_id, "object": "chat.completion",
                                     "created": created, "model": MODEL,
                                     "choices": [{"index": 0, "message": message,
                                                  "finish_reason": finish}],
                                     "usage": usage})
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            events = [chunk(completion_id, created, {"role": "assistant", "content": ""})]
            text = reply["text"]
            middle = max(1, len(text) // 2)
            for part in (text[:middle], text[middle:]):
                if part:
                    events.append(chunk(completion_id, created, {"content": part}))
            for index, call in enumerate(calls):
                events.append(chunk(completion_id, created, {"tool_calls": [
                    {"index": index, "id": call["id"], "type": "function",
                     "function": {"name": call["name"], "arguments": ""}}]}))
                events.append(chunk(completion_id, created, {"tool_calls": [
                    {"index": index, "function": {"arguments": call["arguments"]}}]}))
            events.append(chunk(completion_id, created, {}, finish=finish))
            if (body.get("stream_options") or {}).get("include_usage"):
                data = {"id": completion_id, "object": "chat.completion.chunk",
                        "created": created, "model": MODEL, "choices": [], "usage": usage}
                events.append(f"data: {json.dumps(data)}\n\n".encode())
            events.append(b"data: [DONE]\n\n")
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
