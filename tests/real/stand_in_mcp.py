#!/usr/bin/env python3
"""A tiny stdio MCP server (standard library only) standing in for `relay mcp` in the
real-client harness self-test, and a probe of what Claude Code gives its MCP children.

    python3 stand_in_mcp.py --log events.jsonl [--discover -32022|-32601|ok]

It appends to the log, one JSON object a line:
  {"ev": "start", "pid", "ppid", "env": {...every CLAUDE*/ANTHROPIC* variable...}, "cwd"}
  {"ev": "recv", "msg": <every JSON-RPC message from the client>}
  {"ev": "socket_written", ...} the lines written to CLAUDE_CODE_MESSAGING_SOCKET, at once
  {"ev": "socket_data", ...} anything the receiver wrote back on that connection
  {"ev": "socket", ...} the connection's whole story once it closed (EOF, error, or hold_s)
  {"ev": "receipt", ...} every line received on a reply ("from") socket

`server/discover` is answered with the JSON-RPC error given by --discover (default -32022,
"unsupported protocol version"), with a result when --discover ok, or never (--discover ignore).

Tools (seen by Claude Code as mcp__<server name>__<tool>):
  peer_send {text, delay_s=0, copies=1, reply_socket=false, auth=true, hold_s=40,
             priority="next", msg_id?, token?, via="thread"}
      Returns at once; after delay_s a thread (via "thread"), a child process of this server
      ("subprocess": a grandchild of Claude Code) or a detached process ("detached": setsid -f,
      reparented away from Claude Code) connects to $CLAUDE_CODE_MESSAGING_SOCKET, writes
      the auth line (when auth) and `copies` user lines (msg_id suffixed -1, -2...), then reads
      what comes back until EOF or hold_s, and logs it with timings. With reply_socket it first
      listens on `<socket dir>/standin-<pid>.sock` and names it as "from": "uds:<path>".
  relay_ask {to, text} / relay_reply {ask_id, text}   (only with --mailbox DIR --name NAME)
      A toy of Relay's routing: relay_ask drops `<peer-message from="NAME" ask_id="ask-..">text
      </peer-message>` in DIR/<to>/; relay_reply drops `<peer-message from="NAME"
      reply_to="ask-..">text</peer-message>` for the asker. Each server watches DIR/<NAME>/ and
      writes what arrives into its own Claude Code's socket (as that session's child, so it is
      accepted without approval), the way `relay mcp` would.
  echo {text}   Answers the text back (a harmless tool call).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

LOCK = threading.Lock()
LOG_PATH = ""


def log(event: dict) -> None:
    event.setdefault("t", time.time())
    with LOCK:
        with open(LOG_PATH, "a", encoding="utf-8") as out:
            out.write(json.dumps(event) + "\n")


def send(message: dict) -> None:
    with LOCK:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


TOOLS = [
    {"name": "peer_send",
     "description": "Write a peer message into this Claude Code session's messaging socket.",
     "inputSchema": {"type": "object", "properties": {
         "text": {"type": "string"}, "delay_s": {"type": "number"},
         "copies": {"type": "integer"}, "reply_socket": {"type": "boolean"},
         "auth": {"type": "boolean"}, "hold_s": {"type": "number"},
         "priority": {"type": "string"}, "msg_id": {"type": "string"},
         "token": {"type": "string"}, "via": {"type": "string"}},
         "required": ["text"]}},
    {"name": "relay_ask",
     "description": "Ask another session (by name) a question; its reply arrives later.",
     "inputSchema": {"type": "object", "properties": {
         "to": {"type": "string"}, "text": {"type": "string"}}, "required": ["to", "text"]}},
    {"name": "relay_reply", "description": "Answer an ask by its ask_id.",
     "inputSchema": {"type": "object", "properties": {
         "ask_id": {"type": "string"}, "text": {"type": "string"}},
         "required": ["ask_id", "text"]}},
    {"name": "echo", "description": "Echo the text back.",
     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                     "required": ["text"]}},
]


def listen_for_receipts(path: str, stop_at: float) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    server.settimeout(0.5)
    log({"ev": "receipt_listen", "path": path})
    while time.time() < stop_at:
        try:
            conn, _ = server.accept()
        except socket.timeout:
            continue
        conn.settimeout(5)
        data = b""
        try:
            while b"\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as error:
            log({"ev": "receipt_error", "error": repr(error)})
        log({"ev": "receipt", "data": data.decode("utf-8", "replace")})
        conn.close()
    server.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    log({"ev": "receipt_listen_end", "path": path})


def peer_send(args: dict) -> None:
    time.sleep(float(args.get("delay_s", 0)))
    path = os.environ.get("CLAUDE_CODE_MESSAGING_SOCKET")
    token = os.environ.get("CLAUDE_CODE_MESSAGING_TOKEN")
    hold = float(args.get("hold_s", 40))
    record: dict = {"ev": "socket", "path": path, "args": args}
    if not path:
        record["error"] = "no CLAUDE_CODE_MESSAGING_SOCKET"
        log(record)
        return
    reply_path = None
    if args.get("reply_socket"):
        reply_path = os.path.join(os.path.dirname(path), f"standin-{os.getpid()}.sock")
        threading.Thread(target=listen_for_receipts, args=(reply_path, time.time() + hold + 30),
                         daemon=True).start()
        time.sleep(0.3)
    lines = []
    if args.get("auth", True):
        lines.append({"type": "auth", "token": args.get("token", token)})
    base_id = args.get("msg_id") or f"standin-{os.getpid()}-{int(time.time() * 1000)}"
    copies = int(args.get("copies", 1))
    for index in range(copies):
        text = args["text"] if copies == 1 else f"{args['text']} #{index + 1}"
        frame = {"type": "user", "msgV": 1,
                 "msg_id": base_id if copies == 1 else f"{base_id}-{index + 1}",
                 "priority": args.get("priority", "next"),
                 "message": {"role": "user", "content": text}}
        if reply_path:
            frame["from"] = "uds:" + reply_path
        lines.append(frame)
    record["lines"] = lines
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    started = time.time()
    try:
        client.connect(path)
    except OSError as error:
        record["error"] = f"connect: {error!r}"
        log(record)
        return
    client.sendall("".join(json.dumps(line) + "\n" for line in lines).encode())
    record["written_at"] = time.time()
    log(dict(record, ev="socket_written"))
    client.settimeout(0.5)
    received = []
    closed = None
    while time.time() - started < hold:
        try:
            chunk = client.recv(65536)
        except socket.timeout:
            continue
        except OSError as error:
            closed = f"error {error!r} after {time.time() - started:.2f}s"
            break
        if not chunk:
            closed = f"EOF after {time.time() - started:.2f}s"
            break
        data = {"after_s": round(time.time() - started, 2),
                "data": chunk.decode("utf-8", "replace")}
        received.append(data)
        log(dict(data, ev="socket_data"))
    client.close()
    record["received"] = received
    record["closed_by_peer"] = closed or f"still open after {hold}s (closed by us)"
    log(record)


MAILBOX = ""
NAME = ""


def post(to: str, text: str) -> None:
    """Drops a message for session `to` in the shared mailbox directory."""
    box = os.path.join(MAILBOX, to)
    os.makedirs(box, exist_ok=True)
    stem = f"{time.time():.6f}-{os.getpid()}"
    with open(os.path.join(box, stem + ".tmp"), "w", encoding="utf-8") as out:
        json.dump({"text": text}, out)
    os.replace(os.path.join(box, stem + ".tmp"), os.path.join(box, stem + ".json"))


def watch_mailbox() -> None:
    """Delivers every message dropped for this session into Claude Code's socket, in order."""
    box = os.path.join(MAILBOX, NAME)
    os.makedirs(box, exist_ok=True)
    while True:
        for entry in sorted(os.listdir(box)):
            if not entry.endswith(".json"):
                continue
            path = os.path.join(box, entry)
            with open(path, encoding="utf-8") as source:
                text = json.load(source)["text"]
            os.replace(path, path + ".done")
            log({"ev": "mailbox_deliver", "text": text})
            peer_send({"text": text, "hold_s": 1})
        time.sleep(0.2)


def ask(args: dict) -> str:
    ask_id = "ask-" + os.urandom(4).hex()
    os.makedirs(os.path.join(MAILBOX, "asks"), exist_ok=True)
    with open(os.path.join(MAILBOX, "asks", ask_id), "w") as out:
        out.write(NAME)
    post(args["to"], f'<peer-message from="{NAME}" ask_id="{ask_id}">{args["text"]}'
                     '</peer-message>')
    return f"asked {args['to']}; ask_id={ask_id}; the reply will arrive as a peer message"


def reply(args: dict) -> str:
    with open(os.path.join(MAILBOX, "asks", args["ask_id"])) as source:
        asker = source.read().strip()
    post(asker, f'<peer-message from="{NAME}" reply_to="{args["ask_id"]}">{args["text"]}'
                '</peer-message>')
    return f"replied to {asker}"


def handle(message: dict, discover: str) -> None:
    method = message.get("method")
    ident = message.get("id")
    if ident is None:
        return
    if method == "server/discover":
        if discover == "ignore":
            return
        if discover == "ok":
            send({"jsonrpc": "2.0", "id": ident, "result": {
                "protocolVersion": "2026-07-28", "capabilities": {"tools": {}},
                "serverInfo": {"name": "stand-in", "version": "0.1"}}})
        else:
            code = int(discover)
            send({"jsonrpc": "2.0", "id": ident, "error": {
                "code": code, "message": "Unsupported protocol version" if code == -32022
                else "Method not found"}})
        return
    if method == "initialize":
        version = (message.get("params") or {}).get("protocolVersion", "2025-06-18")
        send({"jsonrpc": "2.0", "id": ident, "result": {
            "protocolVersion": version, "capabilities": {"tools": {}},
            "serverInfo": {"name": "stand-in", "version": "0.1"},
            "instructions": "Stand-in MCP server for the Relay real-client harness."}})
        return
    if method == "tools/list":
        send({"jsonrpc": "2.0", "id": ident, "result": {"tools": TOOLS}})
        return
    if method == "tools/call":
        params = message.get("params") or {}
        name, args = params.get("name"), params.get("arguments") or {}
        if name == "peer_send":
            via = args.get("via", "thread")
            if via == "thread":
                threading.Thread(target=peer_send, args=(args,), daemon=True).start()
            else:
                command = [sys.executable, os.path.abspath(__file__), "--log", LOG_PATH,
                           "--send", json.dumps(args)]
                if via == "detached":  # double fork: reparented away from Claude Code
                    command = ["setsid", "-f"] + command
                subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            text = f"scheduled peer_send in {args.get('delay_s', 0)}s"
        elif name in ("relay_ask", "relay_reply") and MAILBOX:
            text = (ask if name == "relay_ask" else reply)(args)
        elif name == "echo":
            text = str(args.get("text", ""))
        else:
            send({"jsonrpc": "2.0", "id": ident,
                  "error": {"code": -32602, "message": f"unknown tool {name}"}})
            return
        send({"jsonrpc": "2.0", "id": ident,
              "result": {"content": [{"type": "text", "text": text}], "isError": False}})
        return
    if method == "ping":
        send({"jsonrpc": "2.0", "id": ident, "result": {}})
        return
    send({"jsonrpc": "2.0", "id": ident, "error": {"code": -32601, "message": "Method not found"}})


def main() -> None:
    global LOG_PATH, MAILBOX, NAME
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--discover", default="-32022")
    parser.add_argument("--send", help="internal: run one peer_send (JSON args) and exit")
    parser.add_argument("--mailbox", help="shared directory for relay_ask/relay_reply")
    parser.add_argument("--name", help="this session's name in the mailbox")
    args = parser.parse_args()
    LOG_PATH = args.log
    if args.send:
        log({"ev": "sender_process", "pid": os.getpid(), "ppid": os.getppid()})
        peer_send(json.loads(args.send))
        return
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("CLAUDE", "ANTHROPIC", "MCP", "HOME", "TMP", "PWD", "IS_SANDBOX", "AI_AGENT", "COREPACK", "NoDefault"))}
    log({"ev": "start", "pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(),
         "env": env, "all_env_names": sorted(os.environ)})
    if args.mailbox:
        MAILBOX, NAME = args.mailbox, args.name
        threading.Thread(target=watch_mailbox, daemon=True).start()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            log({"ev": "bad_line", "line": line})
            continue
        log({"ev": "recv", "msg": message})
        handle(message, args.discover)
    log({"ev": "stdin_eof"})


if __name__ == "__main__":
    main()
