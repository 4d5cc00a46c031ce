#!/usr/bin/env python3
"""A scripted fake of the Gemini API (generateContent), for driving a real Gemini CLI offline.

Standard library only. Listens on 127.0.0.1 only. Point Gemini CLI at it with
`GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:<port>`, `GEMINI_API_KEY=<any>` and
`security.auth.selectedType: "gemini-api-key"` in settings.json.

    python3 fake_gemini.py --script script.json --log requests.jsonl [--port 0] [--port-file F]

Serves `POST /v1beta/models/<model>:streamGenerateContent` (Server-Sent Events, `alt=sse`) and
`:generateContent` (one JSON response); `:countTokens` answers a small count, `:embedContent` a
tiny vector, `GET /v1beta/models` an empty list, anything else `{}` (200), so a client probing side
endpoints never stalls. Every request is appended to the JSONL log, one object a line:

    {"n": 3, "t": 1718000000.1, "method": "POST", "path": "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
     "query": "alt=sse", "model": "gemini-2.5-flash", "headers": {...}, "body": {...},
     "kind": "main"|"side", "last_text": "...", "rule": "<rule id or null>", "reply": [<parts sent>]}

`kind` is "main" when the request offers tools (`tools[].functionDeclarations`: Gemini CLI's agent
loop) and "side" otherwise (loop detection, routing, summaries...). `last_text` is every text after
the model's last turn (`contents` entries after the last `role: "model"` one): text parts, and
each `functionResponse` as `<name>: <its response as JSON>`, joined by newlines.

The script has the same format as tests/real/fake_anthropic.py's (rules tried in order, `when`
conditions `kind`, `last_contains`, `last_regex`, `body_contains`, `body_regex`, `not_contains`,
`system_contains` (the `systemInstruction` text), `tool_offered` (a function declaration of that
name), `after`, `not_after`; `times`, `delay`; `{{name}}` placeholders), with Gemini replies:

    {"text": "..."}                                         # finishReason STOP
    {"function_call": {"name": "run_shell_command", "args": {...}}}
    {"parts": [{"text": ".."}, {"functionCall": {"name": "..", "args": {..}}}]}

Without a matching rule a main request gets `default` (the text "OK." unless set) and a side
request `side_default` (unless set: the text `{}` when the request asks for JSON
(`generationConfig.responseMimeType` application/json), else "OK.").

`GET /_fake/log` returns the log so far; `POST /_fake/rules` appends rules at run time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_anthropic import Fake, Script  # noqa: E402

DEFAULT_REPLY = {"text": "OK."}
LOGGED_HEADERS = ("user-agent", "x-goog-api-client", "x-goog-api-key")
MODEL_PATH = re.compile(r"^/(?:v1beta|v1|v1alpha)/models/(?P<model>[^:/]+):(?P<method>\w+)$")


def part_texts(part) -> list[str]:
    """The texts held by one content part."""
    if not isinstance(part, dict):
        return []
    if isinstance(part.get("text"), str) and not part.get("thought"):
        return [part["text"]]
    if isinstance(part.get("functionResponse"), dict):
        response = part["functionResponse"]
        return [f"{response.get('name', '')}: {json.dumps(response.get('response'))}"]
    return []


def content_text(content) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    for part in parts or []:
        texts.extend(part_texts(part))
    return "\n".join(texts)


def new_text(contents: list) -> str:
    """Every text after the model's last turn (the new user turn, function responses)."""
    tail: list = []
    for content in reversed(contents):
        if isinstance(content, dict) and content.get("role") == "model":
            break
        tail.append(content)
    return "\n".join(content_text(content) for content in reversed(tail))


def function_names(body: dict) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        for declaration in (tool or {}).get("functionDeclarations") or []:
            if isinstance(declaration, dict):
                names.append(declaration.get("name"))
    return names


def view(body: dict) -> dict:
    """The request as fake_anthropic.Script matches it: `system` text and `tools` names."""
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        system = content_text(system)
    elif not isinstance(system, str):
        system = ""
    return {"system": system, "tools": [{"name": name} for name in function_names(body)]}


def reply_parts(reply: dict) -> list[dict]:
    if "parts" in reply:
        return [dict(part) for part in reply["parts"]]
    if "function_call" in reply:
        call = dict(reply["function_call"])
        call.setdefault("args", {})
        return [{"functionCall": call}]
    return [{"text": reply.get("text", "")}]


def wants_json(body: dict) -> bool:
    config = body.get("generationConfig") or {}
    return "json" in str(config.get("responseMimeType", ""))


def response(parts: list[dict]) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": parts},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20,
                              "totalTokenCount": 120},
            "modelVersion": "fake-gemini"}


def make_handler(fake: Fake, side_default):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-gemini/1"

        def log_message(self, fmt, *args):  # keep stderr quiet
            pass

        def read_body(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def send_json(self, status: int, value) -> None:
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json; charset=UTF-8")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def entry(self, body, raw_text: str, number: int) -> dict:
            url = urlsplit(self.path)
            found = MODEL_PATH.match(url.path)
            headers = {h: self.headers[h] for h in LOGGED_HEADERS if h in self.headers}
            if "x-goog-api-key" in headers:
                headers["x-goog-api-key"] = "<set>"
            return {"n": number, "t": time.time(), "method": self.command, "path": url.path,
                    "query": url.query, "model": found.group("model") if found else None,
                    "headers": headers, "body": body if body is not None else raw_text}

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/_fake/log":
                with fake.log_lock:
                    self.send_json(200, list(fake.entries))
                return
            fake.log(self.entry(None, "", fake.next_number()))
            if url.path.rstrip("/").endswith("/models"):
                self.send_json(200, {"models": []})
            else:
                self.send_json(200, {})

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
            found = MODEL_PATH.match(url.path)
            method = found.group("method") if found else ""
            if method not in ("generateContent", "streamGenerateContent") or not isinstance(body, dict):
                fake.log(entry)
                if method == "countTokens":
                    self.send_json(200, {"totalTokens": 100})
                elif method in ("embedContent", "batchEmbedContents"):
                    self.send_json(200, {"embedding": {"values": [0.0] * 8},
                                         "embeddings": [{"values": [0.0] * 8}]})
                else:
                    self.send_json(200, {})
                return
            kind = "main" if function_names(body) else "side"
            last = new_text(body.get("contents") or [])
            rule, reply, delay = fake.script.choose(view(body), raw_text, kind, last, number)
            if rule is None and kind == "side":
                reply = side_default if side_default is not None else (
                    {"text": "{}"} if wants_json(body) else DEFAULT_REPLY)
            parts = reply_parts(reply)
            entry.update(kind=kind, last_text=last, rule=rule, reply=parts)
            fake.log(entry)
            if delay:
                time.sleep(delay)
            if method == "generateContent":
                self.send_json(200, response(parts))
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            # One chunk per part, the finish reason and usage on the last one (as the real API).
            chunks = []
            for index, part in enumerate(parts):
                chunk = response([part])
                if index < len(parts) - 1:
                    del chunk["candidates"][0]["finishReason"]
                chunks.append(chunk)
            try:
                for chunk in chunks or [response([{"text": ""}])]:
                    self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def serve(script: dict, log_path: str, port: int = 0):
    """Starts the fake in a daemon thread; returns (server, Fake). server.server_port is the port."""
    parsed = Script(script)
    parsed.default = script.get("default", DEFAULT_REPLY)
    fake = Fake(parsed, log_path)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(fake, script.get("side_default")))
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
