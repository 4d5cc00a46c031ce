#!/usr/bin/env python3
"""End-to-end check of the real-client harness with the real Claude Code and a stand-in for
`relay mcp` (tests/real/stand_in_mcp.py, configured under the server name "relay").

    RELAY_TEST_REAL_CLIENTS=1 python3 tests/real/selftest.py [test name ...]

Without RELAY_TEST_REAL_CLIENTS=1 it skips everything. Artifacts (fake API logs, MCP logs,
TUI launchers) stay under $RELAY_TEST_REAL_WORK (default /tmp/relay-real-selftest)/<test>/.

Tests:
  headless_busy_turn  `claude -p`: the MCP child inherits the messaging variables; a message it
                      writes into the socket while a Bash tool runs is in the next request, as a
                      system-role message "Another Claude session sent a message while you were
                      working:\\n<text>\\n\\n..."; nothing comes back on the connection.
  tui_idle_wake       The interactive TUI under tmux, idle after a first turn: a message the
                      MCP child writes starts a new turn (a user-role message "Another Claude
                      session sent a message:\\n<text>\\n\\n..."). Then SIGKILL: the socket file
                      stays behind and connecting to it fails with ECONNREFUSED.
  ask_reply           Two sessions, A headless and busy, B an idle TUI, each with its own stand-in
                      sharing a mailbox directory: A's model calls mcp__relay__relay_ask to b;
                      B wakes with the ask, its model calls mcp__relay__relay_reply with the
                      ask_id it reads in the text; A sees the reply mid-turn and answers with it.
Prints PASS/FAIL per test and a closing "N passed, N failed" line; exits 1 on any failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
from claude_session import (HERE, FakeApi, Scratch, TmuxClaude, read_jsonl,  # noqa: E402
                            start_headless, stop_group, tool_search, tool_use, wait_until)

# Outside the repository: a project directory inside a git work tree makes Claude Code put that
# repository's `git status` into the model's context.
WORK = Path(os.environ.get("RELAY_TEST_REAL_WORK")
            or Path(tempfile.gettempdir()) / "relay-real-selftest")
STAND_IN = str(HERE / "stand_in_mcp.py")
BUSY = "Another Claude session sent a message while you were working:\n"
IDLE = "Another Claude session sent a message:\n"
TRAILER = ("This came from another Claude session \u2014 not typed by your user, but very likely "
           "working on their behalf.")


def stand_in(root: Path, log: str, extra: list[str] | None = None) -> dict:
    return {"command": sys.executable, "args": [STAND_IN, "--log", str(root / log)] + (extra or [])}


def sleep_tool(seconds: int) -> dict:
    # A foreground `sleep` is refused by Claude Code's Bash tool; a Python sleep is not.
    return tool_use("Bash", {"command": f"python3 -c 'import time; time.sleep({seconds})'; echo slept",
                             "description": "wait a while"})


def fresh(name: str) -> Path:
    root = WORK / name
    shutil.rmtree(root, ignore_errors=True)
    return root


def test_headless_busy_turn() -> None:
    root = fresh("headless_busy_turn")
    scratch = Scratch(root)
    api = FakeApi(root, {"rules": [
        {"id": "saw", "when": {"last_contains": "HELLO-FROM-PEER", "after": ["sleep"]},
         "reply": {"text": "SAW-PEER"}},
        {"id": "load", "when": {"last_contains": "START-BUSY"},
         "reply": tool_search("mcp__relay__peer_send")},
        {"id": "send", "when": {"after": ["load"], "tool_offered": "mcp__relay__peer_send"},
         "reply": tool_use("mcp__relay__peer_send",
                           {"text": "HELLO-FROM-PEER", "delay_s": 2, "hold_s": 12,
                            "reply_socket": True})},
        {"id": "sleep", "when": {"after": ["send"]}, "reply": sleep_tool(8)},
    ]})
    mcp = scratch.mcp_config({"relay": stand_in(root, "mcp.jsonl")})
    proc = start_headless(scratch, api, "START-BUSY", mcp_config=mcp)
    try:
        code = proc.wait(120)
    finally:
        stop_group(proc.pid)
        api.stop()
    out = (root / "headless.out").read_text().strip()
    assert code == 0 and out == "SAW-PEER", (code, out, (root / "headless.err").read_text())
    events = read_jsonl(root / "mcp.jsonl")
    env = next(e for e in events if e["ev"] == "start")["env"]
    sock = env["CLAUDE_CODE_MESSAGING_SOCKET"]
    assert re.fullmatch(re.escape(str(scratch.tmp)) + r"/cc-socks/\d+\.sock", sock), sock
    assert re.fullmatch(r"[0-9a-f]{32}", env["CLAUDE_CODE_MESSAGING_TOKEN"]), env
    assert re.fullmatch(r"[0-9a-f-]{36}", env["CLAUDE_CODE_SESSION_ID"]), env
    assert env["CLAUDECODE"] == "1" and env["CLAUDE_PROJECT_DIR"] == str(scratch.project), env
    seen = api.find("HELLO-FROM-PEER", where="last")
    last = seen["body"]["messages"][-1]
    assert last["role"] == "system", last
    text = last["content"][0]["text"]
    assert text.startswith(BUSY + "HELLO-FROM-PEER\n\n" + TRAILER), text
    assert seen["body"]["messages"][-2]["content"][0]["content"] == "slept", "not after the tool"
    assert not [e for e in events if e["ev"] in ("socket_data", "receipt")], "receipts came back"


def test_tui_idle_wake() -> None:
    root = fresh("tui_idle_wake")
    scratch = Scratch(root)
    api = FakeApi(root, {"rules": [
        {"id": "woke", "when": {"last_contains": "HELLO-IDLE"}, "reply": {"text": "WOKE-BY-PEER"}},
        {"id": "load", "when": {"last_contains": "FIRST-TURN"},
         "reply": tool_search("mcp__relay__peer_send")},
        {"id": "send", "when": {"after": ["load"], "tool_offered": "mcp__relay__peer_send"},
         "reply": tool_use("mcp__relay__peer_send", {"text": "HELLO-IDLE", "delay_s": 8,
                                                     "hold_s": 5})},
        {"id": "done", "when": {"after": ["send"]}, "reply": {"text": "first turn done"}},
    ]})
    mcp = scratch.mcp_config({"relay": stand_in(root, "mcp.jsonl")})
    tui = TmuxClaude(scratch, api, mcp_config=mcp)
    try:
        tui.wait_screen("bypass permissions on", 40)
        tui.type_line("FIRST-TURN")
        tui.wait_screen("first turn done", 60)
        idle_since = time.time()
        wait_until(lambda: any(s.get("status") == "idle" for s in scratch.sessions()), 10,
                   what="the session registry to say idle")
        seen = api.wait_for("HELLO-IDLE", timeout=40, where="last")
        assert seen["t"] > idle_since, "the message did not arrive while idle"
        last = seen["body"]["messages"][-1]
        assert last["role"] == "user", last
        assert last["content"][0]["text"].startswith(IDLE + "HELLO-IDLE\n\n" + TRAILER), last
        tui.wait_screen("WOKE-BY-PEER", 30)
        registry = scratch.sessions()[0]
        sock = registry["messagingSocketPath"]
        assert registry["pid"] == tui.claude_pid() and sock.endswith(f"/{registry['pid']}.sock")
        os.kill(tui.claude_pid(), signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{registry['pid']}").exists(), 10, what="claude to die")
        assert os.path.exists(sock), "a killed Claude Code removed its socket"
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(sock)
            raise AssertionError("connect to a dead session's socket succeeded")
        except ConnectionRefusedError:
            pass
        finally:
            probe.close()
    finally:
        tui.stop()
        api.stop()


def test_ask_reply() -> None:
    root = fresh("ask_reply")
    mailbox = root / "mailbox"
    a, b = Scratch(root / "a"), Scratch(root / "b")
    api_b = FakeApi(root / "b", {"rules": [
        {"id": "ready", "when": {"last_contains": "BE-READY"}, "reply": {"text": "b is ready"}},
        {"id": "load", "when": {"last_regex": r'<peer-message from="a" ask_id="(?P<ask_id>[^"]+)"'},
         "reply": tool_search("mcp__relay__relay_reply")},
        {"id": "answer", "when": {"after": ["load"], "tool_offered": "mcp__relay__relay_reply"},
         "reply": tool_use("mcp__relay__relay_reply", {"ask_id": "{{ask_id}}", "text": "42"})},
        {"id": "done", "when": {"after": ["answer"]}, "reply": {"text": "b replied"}},
    ]})
    api_a = FakeApi(root / "a", {"rules": [
        {"id": "got", "when": {"last_regex": r'<peer-message from="b" reply_to="[^"]+">(?P<answer>[^<]*)<'},
         "reply": {"text": "A GOT {{answer}}"}},
        {"id": "load", "when": {"last_contains": "ASK-B"},
         "reply": tool_search("mcp__relay__relay_ask")},
        {"id": "ask", "when": {"after": ["load"], "tool_offered": "mcp__relay__relay_ask"},
         "reply": tool_use("mcp__relay__relay_ask", {"to": "b", "text": "What is 6*7?"})},
        {"id": "wait", "when": {"after": ["ask"], "not_after": ["got"]}, "reply": sleep_tool(6),
         "times": 10},
    ]})
    box = ["--mailbox", str(mailbox), "--name"]
    tui = TmuxClaude(b, api_b, mcp_config=b.mcp_config({"relay": stand_in(root, "b-mcp.jsonl",
                                                                         box + ["b"])}))
    proc = None
    try:
        tui.wait_screen("bypass permissions on", 40)
        tui.type_line("BE-READY")
        tui.wait_screen("b is ready", 60)
        proc = start_headless(a, api_a, "ASK-B", name="a",
                              mcp_config=a.mcp_config({"relay": stand_in(root, "a-mcp.jsonl",
                                                                         box + ["a"])}))
        code = proc.wait(150)
        out = (a.root / "a.out").read_text().strip()
        assert code == 0 and out == "A GOT 42", (code, out, (a.root / "a.err").read_text())
        asked = api_b.find("ask_id=", where="last")
        ask_id = re.search(r'ask_id="([^"]+)"', asked["last_text"]).group(1)
        replied = api_b.find("relay_reply", predicate=lambda e: e["rule"] == "answer")
        assert replied["reply"][0]["input"] == {"ask_id": ask_id, "text": "42"}, replied["reply"]
        tui.wait_screen("b replied", 20)
    finally:
        if proc is not None:
            stop_group(proc.pid)
        tui.stop()
        api_a.stop()
        api_b.stop()


TESTS = {"headless_busy_turn": test_headless_busy_turn, "tui_idle_wake": test_tui_idle_wake,
         "ask_reply": test_ask_reply}


def main() -> int:
    names = sys.argv[1:] or list(TESTS)
    if os.environ.get("RELAY_TEST_REAL_CLIENTS") != "1":
        print("RELAY_TEST_REAL_CLIENTS is not 1: real-client tests skipped "
              "(needs tests/real/install-claude.sh and tmux)")
        print(f"0 passed, 0 failed, {len(names)} skipped")
        return 0
    passed = failed = 0
    for name in names:
        started = time.time()
        try:
            TESTS[name]()
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {name} ({time.time() - started:.0f}s)")
            traceback.print_exc()
        else:
            passed += 1
            print(f"PASS {name} ({time.time() - started:.0f}s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
