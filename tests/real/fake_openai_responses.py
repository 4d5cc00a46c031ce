#!/usr/bin/env python3
"""A scripted fake of the OpenAI Responses API, for driving a real Codex CLI offline.

Standard library only. Listens on 127.0.0.1 only.

    python3 fake_openai_responses.py --script script.json --log requests.jsonl [--port 0] [--port-file F]

Codex reaches it through a `model_providers` entry with `wire_api = "responses"` and
`base_url = "http://127.0.0.1:<port>/v1"`. Serves `POST /v1/responses` (Server-Sent Events when
the body has `"stream": true`, which Codex always sets; one JSON response otherwise);
`GET /v1/models` answers an empty list; any other path `{}` (200), so a client probing side
endpoints never stalls. Every request is appended to the JSONL log, one object a line:

    {"n": 3, "t": 1718000000.1, "method": "POST", "path": "/v1/responses", "headers": {...},
     "body": {...}, "kind": "main"|"side", "last_text": "...", "tool_names": [...],
     "rule": "<id of the rule that answered, or null>", "reply": [<output items sent>]}

`kind` is "main" when the request offers tools (Codex's agent loop) and "side" otherwise
(title generation and the like). `last_text` is every text found in the `input` items after the
model's last output (its last assistant message or function call): the new user turn, the
function call outputs, and whatever Codex appended since, joined by newlines. `tool_names` are
the tools offered, flattened: a function `f` as "f", a function `f` inside a namespace `ns` as
"ns.f" (Codex 0.171 groups an MCP server's tools in a namespace `mcp__<server>`).

The script (JSON) is

    {"rules": [RULE, ...], "default": REPLY, "side_default": REPLY}

and a RULE, tried in order (the first whose `when` holds and that has uses left answers):

    {"id": "reply", "when": {
        "kind": "main",                     # "main" (default), "side" or "any"
        "last_contains": "PING",            # substring of last_text
        "last_regex": "msg_id=\\"(?P<id>[^\\"]+)\\"",  # regex on last_text; named groups fill
                                            #   {{name}} in the reply and are remembered
        "body_contains": "...", "not_contains": "...",  # on the whole request body (JSON text)
        "tool_offered": "mcp__relay.relay_send",        # in tool_names
        "after": ["rule-id"], "not_after": ["rule-id"]},
     "times": 1,                            # uses (default 1; null = unlimited)
     "delay": 0.0,                          # seconds to wait before answering
     "reply": REPLY}

A REPLY is `{"text": "..."}` (an assistant message) or
`{"tool_call": {"name": "relay_send", "namespace": "mcp__relay", "arguments": {...}}}` (one
function call; `namespace` omitted for a plain function such as `shell`), or
`{"output": [ITEM, ...]}` (raw output items). `{{n}}` is the request number.
Without a matching rule a main request gets `default` (the text "OK." unless set), a side
request `side_default` (the text "Fake title" unless set).

`GET /_fake/log` returns the log so far as a JSON list; `POST /_fake/rules` appends rules
(`POST /_fake/rules?first=1` puts them before the others).
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
LOGGED_HEADERS = ("user-agent", "originator", "session_id", "session-id", "x-codex-turn-metadata",
                  "x-codex-beta-features", "version", "openai-beta", "chatgpt-account-id")


def content_text(content) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for part in content or []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, str):
            texts.append(part)
    return "\n".join(texts)


def item_text(item) -> str:
    """The text one input item carries (a message's text parts, a function call's output)."""
    if not isinstance(item, dict):
        return ""
    kind = item.get("type", "message")
    if kind == "message":
        return content_text(item.get("content"))
    if kind in ("function_call_output", "custom_tool_call_output", "mcp_tool_call_output"):
        output = item.get("output")
        if isinstance(output, dict):
            return content_text(output.get("content")) or json.dumps(output)
        return content_text(output)
    return ""


def is_model_output(item) -> bool:
    if not isinstance(item, dict):
        return False
    kind = item.get("type", "message")
    return (kind == "message" and item.get("role") == "assistant") or kind in (
        "function_call", "custom_tool_call", "reasoning", "local_shell_call")


def new_text(items: list) -> str:
    """Texts of every input item after the model's last output, joined by newlines."""
    tail = []
    for item in reversed(items):
        if is_model_output(item):
            break
        tail.append(item)
    return "\n".join(text for text in (item_text(item) for item in reversed(tail)) if text)


def tool_names(body: dict) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace":
            for inner in tool.get("tools") or []:
                if isinstance(inner, dict):
                    names.append(f"{tool.get('name')}.{inner.get('name')}")
        elif tool.get("name"):
            names.append(tool["name"])
        else:
            names.append(tool.get("type", "?"))
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


def reply_items(reply: dict) -> list[dict]:
    """The output items of a REPLY, with ids and call ids given."""
    if "output" in reply:
        items = [dict(item) for item in reply["output"]]
    elif "tool_call" in reply:
        call = reply["tool_call"]
        item = {"type": "function_call", "name": call["name"],
                "arguments": json.dumps(call.get("arguments", {}))}
        if call.get("namespace"):
            item["namespace"] = call["namespace"]
        items = [item]
    else:
        items = [{"type": "message", "role": "assistant", "status": "completed",
                  "content": [{"type": "output_text", "text": reply.get("text", ""),
                               "annotations": []}]}]
    for item in items:
        if item["type"] == "function_call":
            item.setdefault("id", "fc_" + uuid.uuid4().hex[:24])
            item.setdefault("call_id", "call_" + uuid.uuid4().hex[:24])
            item.setdefault("status", "completed")
        else:
            item.setdefault("id", "msg_" + uuid.uuid4().hex[:24])
    return items


class Script:
    def __init__(self, script: dict):
        self.lock = threading.Lock()
        self.rules: list[dict] = []
        self.fired: dict[str, int] = {}
        self.vars: dict[str, str] = {}
        self.default = script.get("default", DEFAULT_REPLY)
        self.side_default = script.get("side_default", SIDE_DEFAULT_REPLY)
        self.add(script.get("rules", []))

    def add(self, rules: list[dict], first: bool = False) -> None:
        with self.lock:
            added = []
            for rule in rules:
                rule = dict(rule)
                rule.setdefault("id", f"rule{len(self.rules) + len(added)}")
                rule["_left"] = rule.get("times", 1)
                added.append(rule)
            self.rules = added + self.rules if first else self.rules + added

    def match(self, rule: dict, raw: str, kind: str, last: str, names: list[str]):
        when = rule.get("when", {})
        wanted_kind = when.get("kind", "main")
        if wanted_kind != "any" and wanted_kind != kind:
            return None
        if "last_contains" in when and when["last_contains"] not in last:
            return None
        if "body_contains" in when and when["body_contains"] not in raw:
            return None
        if "not_contains" in when and when["not_contains"] in raw:
            return None
        if "tool_offered" in when and when["tool_offered"] not in names:
            return None
        for needed in when.get("after", []):
            if not self.fired.get(needed):
                return None
        for barred in when.get("not_after", []):
            if self.fired.get(barred):
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

    def choose(self, raw: str, kind: str, last: str, names: list[str], number: int):
        with self.lock:
            for rule in self.rules:
                if rule["_left"] is not None and rule["_left"] <= 0:
                    continue
                groups = self.match(rule, raw, kind, last, names)
                if groups is None:
                    continue
                if rule["_left"] is not None:
                    rule["_left"] -= 1
                self.fired[rule["id"]] = self.fired.get(rule["id"], 0) + 1
                self.vars.update({k: v for k, v in groups.items() if k != "1"})
                values = dict(self.vars, **groups, n=number)
                return rule["id"], fill(rule["reply"], values), float(rule.get("delay", 0))
        return None, fill(self.default if kind == "main" else self.side_default,
                          {"n": number}), 0.0


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


def sse(data: dict) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def response_events(response_id: str, model: str, items: list[dict]) -> list[bytes]:
    usage = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": 120}
    base = {"id": response_id, "object": "response", "created_at": int(time.time()),
            "model": model, "status": "in_progress", "output": []}
    events = [sse({"type": "response.created", "response": base}),
              sse({"type": "response.in_progress", "response": base})]
    for index, item in enumerate(items):
        if item["type"] == "message":
            text = content_text(item.get("content"))
            events.append(sse({"type": "response.output_item.added", "output_index": index,
                               "item": dict(item, status="in_progress", content=[])}))
            middle = max(1, len(text) // 2)
            for part in (text[:middle], text[middle:]):
                if part:
                    events.append(sse({"type": "response.output_text.delta", "item_id": item["id"],
                                       "output_index": index, "content_index": 0,
                                       "delta": part}))
        else:
            events.append(sse({"type": "response.output_item.added", "output_index": index,
                               "item": item}))
        events.append(sse({"type": "response.output_item.done", "output_index": index,
                           "item": item}))
    done = dict(base, status="completed", output=items, usage=usage)
    events.append(sse({"type": "response.completed", "response": done}))
    return events


def make_handler(fake: Fake):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-openai-responses/1"

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
            self.send_header("x-request-id", "req_" + uuid.uuid4().hex[:24])
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
            fake.log(self.entry(None, "", fake.next_number()))
            if url.path.rstrip("/").endswith("/models"):
                self.send_json(200, {"object": "list", "data": [], "models": []})
            else:
                self.send_json(200, {})

        def do_HEAD(self):
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_POST(self):
            url = urlsplit(self.path)
            raw_text = self.read_body().decode("utf-8", "replace")
            try:
                body = json.loads(raw_text) if raw_text else {}
            except ValueError:
                body = None
            if url.path == "/_fake/rules":
                fake.script.add(body or [], first=url.query == "first=1")
                self.send_json(200, {"ok": True})
                return
            number = fake.next_number()
            entry = self.entry(body, raw_text, number)
            if not url.path.rstrip("/").endswith("/responses") or not isinstance(body, dict):
                fake.log(entry)
                self.send_json(200, {})
                return
            items = body.get("input")
            items = items if isinstance(items, list) else [
                {"type": "message", "role": "user", "content": str(items or "")}]
            names = tool_names(body)
            kind = "main" if names else "side"
            last = new_text(items)
            rule, reply, delay = fake.script.choose(raw_text, kind, last, names, number)
            output = reply_items(reply)
            entry.update(kind=kind, last_text=last, tool_names=names, rule=rule, reply=output)
            fake.log(entry)
            if delay:
                time.sleep(delay)
            response_id = "resp_" + uuid.uuid4().hex[:24]
            model = body.get("model", "fake-model")
            events = response_events(response_id, model, output)
            if not body.get("stream"):
                self.send_json(200, {"id": response_id, "object": "response", "model": model,
                                     "status": "completed", "output": output})
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("cache-control", "no-cache")
            self.send_header("x-request-id", "req_" + uuid.uuid4().hex[:24])
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
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
