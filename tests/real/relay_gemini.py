#!/usr/bin/env python3
"""The real Gemini CLI with the real `relay` binary: messages reach the model through Relay's
Gemini hooks (`relay hook gemini after-agent|after-tool`, docs/delivery.md).

    tests/real/install-gemini.sh        # once: Gemini CLI 0.61.0 into target/real-clients/gemini
    RELAY_TEST_REAL_CLIENTS=1 RELAY_TEST_RELAY_BIN=/path/relay PYTHONDONTWRITEBYTECODE=1 \
        python3 tests/real/relay_gemini.py [test ...]

Without RELAY_TEST_REAL_CLIENTS=1 it prints "skipped" and exits 0. The relay binary is
$RELAY_TEST_RELAY_BIN, else target/release/relay; Gemini is $RELAY_TEST_GEMINI, else the
launcher install-gemini.sh puts in target/real-clients/gemini. Needs tmux and Node 20+.

Each test starts its own hub (`relay hub --data-dir <root>/data --idle-exit 0 --ws-port 0`) and a
fake Gemini API (tests/real/fake_gemini.py); the session's settings are written by
`relay install gemini` in a scratch HOME (`GEMINI_CLI_HOME`), then the test adds the offline
settings (API-key auth, a fixed model) and `--no-spawn --as <name>` to the server's args.
(When `relay install gemini` fails, the same entries are written by hand and the test says so.)
Gemini runs as an interactive TUI (`gemini --yolo`, so shell calls need no approval) in a private
tmux server. Artifacts: $RELAY_TEST_REAL_WORK (default /tmp/relay-real-gemini)/<test>/:
`api-requests.jsonl`, `data/logs/{hub,mcp,hook}.log`, `home/.gemini/settings.json`, `tui-launch.sh`.

Tests:
  busy_turn_end   bob's model is busy in a 6 s shell call; `relay send bob PING-… --as alice`.
                  At the turn's end the AfterAgent hook denies the stop: the next request's last
                  message is a user text `[Relay] 1 message from other AI sessions…` + the
                  `<peer-message from="alice" …>` text; the scripted answer calls
                  `mcp_relay_relay_send` to alice, which `relay inbox --as alice` then shows.
                  The text arrives as new text once.
  urgent_tool     an urgent `relay send --urgent` during the shell call rides on that call's
                  result (`<hook_context>` appended by the AfterTool hook, `<`/`>` escaped), and
                  is not delivered again at the turn's end.
  idle_next_turn  an idle Gemini cannot be woken: `relay send` to it brings no request for 8 s;
                  the user's next prompt goes to the model unchanged, and the message follows at
                  the end of that turn.
  latency         20 turns: each final answer is held 1.5 s by the fake; 0.5 s into the hold a
                  message is sent; measured: send -> text in the model's request (p50, p90), and
                  turn end (the held answer sent) -> that request (the hook's own cost).

Facts (Gemini CLI 0.61.0, found with this harness and a probe hook; see also shared notes):
- Hooks: settings.json `hooks.<Event>: [{matcher?, sequential?, hooks: [{type: "command",
  command, name?, timeout (ms, default 60000), env?}]}]`; on by default (`hooksConfig.enabled`),
  run only in trusted folders (GEMINI_CLI_TRUST_WORKSPACE=true counts). `matcher` is a regex on
  the tool name for tool events, ignored for AfterAgent. The command runs as `bash -c <command>`
  with the input JSON on stdin, cwd the project, and env = Gemini's own env (GEMINI_API_KEY
  included) + GEMINI_PROJECT_DIR, GEMINI_CWD, GEMINI_SESSION_ID, GEMINI_PLANS_DIR,
  CLAUDE_PROJECT_DIR; no GEMINI_CLI.
- Inputs: every event has session_id, transcript_path, cwd, hook_event_name, timestamp.
  AfterAgent: prompt (the user's original prompt, also in continuations), prompt_response (the
  whole turn's answer text, continuations appended with \\n), stop_hook_active (false in a user's
  turn, true in a turn a hook's deny started). AfterTool: tool_name (`run_shell_command`,
  `mcp_relay_relay_inbox`), tool_input, tool_response {llmContent, returnDisplay, error?},
  and for MCP tools mcp_context {server_name, tool_name, command, args}.
- AfterAgent `{"decision":"deny","reason":R}` (also "block"): Gemini sends R verbatim as the next
  user message `{"role":"user","parts":[{"text":R}]}` in the same turn, no prefix; the TUI shows
  `⚠ Agent execution blocked: R` (or the output's `systemMessage` instead of R) and an info line
  "This request failed. Press F12 …" (low error verbosity). A deny in a continuation continues
  again (bounded only by the turn budget): the loop guard is Relay's.
- AfterTool `{"hookSpecificOutput":{"hookEventName":"AfterTool","additionalContext":C}}`: the
  tool result the model sees gets `\\n\\n<hook_context>C</hook_context>` appended (inside the
  functionResponse's `output`), with `<`/`>` in C escaped to `&lt;`/`&gt;`.
- No-op: `{}` or empty stdout, exit 0. Empty stdout + stderr text: the stderr text is shown as a
  "hook system message" (non-JSON stdout too); stdout `{}` + stderr: nothing shown. Exit 1 or
  another non-zero code: "Hook(s) [...] failed" warning shown, output still parsed. Exit 2:
  stderr becomes a deny reason. Past `timeout`: SIGTERM (SIGKILL 5 s later), output ignored,
  failure warning; Gemini waits the whole timeout.
- Processes: `gemini` is a node launcher that re-spawns node (GEMINI_CLI_NO_RELAUNCH=true);
  the hook (bash -c execs a simple command) and the MCP server are both direct children of that
  inner node process: hook -> node(inner) -> node(launcher) -> shell; relay mcp -> node(inner)
  -> node(launcher). MCP servers get Gemini's env minus secrets (no GEMINI_API_KEY) plus
  GEMINI_CLI=1, cwd the project.
- No `agentapi` in the package (Antigravity's path is agy's own); the bundle ships only an
  `antigravity-support` skill with install instructions.

Prints PASS/FAIL per test with timings and a closing "N passed, N failed" line; exits 1 on any
failure.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
from claude_session import REPO, stop_group, wait_until  # noqa: E402
from relay_claude import Hub, relay_binary  # noqa: E402  (also scrubs inherited RELAY_*)

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("RELAY_TEST_REAL_WORK")
            or Path(tempfile.gettempdir()) / "relay-real-gemini")
GEMINI_VERSION = "0.61.0"
MODEL = "gemini-2.5-flash"
HEADER = "[Relay] 1 message from other AI sessions"
TIMINGS: dict[str, dict[str, float]] = {}


def gemini_binary() -> str:
    explicit = os.environ.get("RELAY_TEST_GEMINI")
    if explicit:
        return explicit
    path = REPO / "target" / "real-clients" / "gemini" / "node_modules" / ".bin" / "gemini"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run tests/real/install-gemini.sh first")
    return str(path)


def note(test: str, what: str, seconds: float) -> None:
    TIMINGS.setdefault(test, {})[what] = round(seconds, 3)
    print(f"  {test}: {what} {seconds:.3f}s", flush=True)


def fresh(name: str) -> Path:
    root = WORK / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


class FakeGemini:
    """tests/real/fake_gemini.py as a child process in its own process group."""

    def __init__(self, root: Path, script: dict):
        self.dir = root
        self.log_path = root / "api-requests.jsonl"
        port_file = root / "api.port"
        (root / "api-script.json").write_text(json.dumps(script, indent=2))
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_gemini.py"), "--script", str(root / "api-script.json"),
             "--log", str(self.log_path), "--port-file", str(port_file)],
            stdout=open(root / "api.out", "w"), stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        wait_until(lambda: port_file.exists() or self.proc.poll() is not None, 10,
                   what="the fake API port file")
        if self.proc.poll() is not None:
            raise RuntimeError(f"fake API exited: {(root / 'api.out').read_text()}")
        self.url = f"http://127.0.0.1:{int(port_file.read_text())}"

    def requests(self) -> list[dict]:
        """Logged generateContent requests that offered tools (the agent loop)."""
        if not self.log_path.exists():
            return []
        out = []
        # Only whole lines: the fake API may be writing the last one right now.
        with open(self.log_path, encoding="utf-8") as log:
            for line in log:
                if line.endswith("\n") and line.strip():
                    entry = json.loads(line)
                    if entry.get("kind") == "main":
                        out.append(entry)
        return out

    def last_n(self) -> int:
        return max((e["n"] for e in self.requests()), default=0)

    def find(self, substring: str | None = None, after: int = 0, rule: str | None = None):
        for entry in self.requests():
            if entry["n"] <= after:
                continue
            if substring is not None and substring not in entry.get("last_text", ""):
                continue
            if rule is not None and entry.get("rule") != rule:
                continue
            return entry
        return None

    def wait_for(self, substring: str | None = None, timeout: float = 60, after: int = 0,
                 rule: str | None = None) -> dict:
        return wait_until(lambda: self.find(substring, after, rule), timeout, interval=0.05,
                          what=f"a request with {substring or rule!r} after #{after}")

    def stop(self) -> None:
        stop_group(self.proc.pid)
        self.proc.wait(5)


class Session:
    """A scratch HOME with Gemini's settings for one Relay session, and the TUI in tmux."""

    def __init__(self, root: Path, api: FakeGemini, hub: Hub, name: str):
        self.root = root
        self.home = root / "home"
        self.project = root / "project"   # outside any git tree (see README)
        self.tmp = root / "tmp"
        for path in (self.home, self.project, self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        self.settings_path = self.home / ".gemini" / "settings.json"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
            "GEMINI_CLI_HOME": str(self.home), "TMPDIR": str(self.tmp), "TERM": "xterm-256color",
            "LANG": "C.UTF-8", "GEMINI_API_KEY": "relay-real-client-test-key",
            "GOOGLE_GEMINI_BASE_URL": api.url, "GEMINI_CLI_TRUST_WORKSPACE": "true",
            "RELAY_LOG": os.environ.get("RELAY_LOG", "relay=debug"),
        }
        self.hand_written = self.install(hub, name)
        self.socket = root / "tui.tmux"
        launcher = root / "tui-launch.sh"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env.items())
        launcher.write_text("#!/bin/sh\n" + exports + f"cd {shlex.quote(str(self.project))}\n"
                            + f"exec {shlex.quote(gemini_binary())} --yolo\n")
        launcher.chmod(0o755)
        self.tmux("new-session", "-d", "-s", "g", "-x", "160", "-y", "50",
                  f"env -i sh {shlex.quote(str(launcher))}")
        self.tmux("set-option", "-t", "g", "remain-on-exit", "on")
        self.pane_pid = int(self.tmux("display-message", "-p", "-t", "g", "#{pane_pid}").strip())

    def install(self, hub: Hub, name: str) -> bool:
        """`relay install gemini` into the scratch HOME, then the offline settings and this
        session's name. Returns True when the entries had to be written by hand."""
        result = subprocess.run([hub.binary, "install", "gemini", "--data-dir", str(hub.data)],
                                env=self.env, cwd=self.project, capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        (self.root / "install.out").write_text(result.stdout + result.stderr)
        settings = json.loads(self.settings_path.read_text()) if result.returncode == 0 else {}
        hand = not settings.get("mcpServers", {}).get("relay")
        if hand:
            print(f"  relay install gemini failed ({result.returncode}); writing settings by hand",
                  flush=True)
            data = ["--data-dir", str(hub.data)]
            settings = {"mcpServers": {"relay": {"command": hub.binary,
                                                 "args": ["mcp", "--client", "gemini", *data]}},
                        "hooks": {event: [{"matcher": "*", "hooks": [{
                            "name": f"relay-{arg}", "type": "command", "timeout": 10000,
                            "command": " ".join(shlex.quote(p) for p in
                                                [hub.binary, "hook", "gemini", arg, *data])}]}]
                                  for event, arg in (("AfterAgent", "after-agent"),
                                                     ("AfterTool", "after-tool"))}}
        for event in ("AfterAgent", "AfterTool"):
            commands = [h.get("command", "") for group in settings["hooks"][event]
                        for h in group.get("hooks", [])]
            assert any("hook gemini" in c for c in commands), f"no relay {event} hook: {settings}"
        settings["mcpServers"]["relay"]["args"] += ["--no-spawn", "--as", name]
        settings["mcpServers"]["relay"].setdefault("env", {})["RELAY_LOG"] = self.env["RELAY_LOG"]
        settings.update({
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "model": {"name": MODEL},
            "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
        })
        self.settings_path.parent.mkdir(parents=True, exist_ok=True)
        self.settings_path.write_text(json.dumps(settings, indent=2))
        return hand

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), *args], check=True,
                              capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "g")

    def wait_screen(self, text: str, timeout: float = 60) -> str:
        return wait_until(lambda: (lambda s: s if text in s else None)(self.screen()), timeout,
                          what=f"{text!r} on the Gemini screen")

    def type_line(self, text: str) -> None:
        self.tmux("send-keys", "-t", "g", "-l", text)
        time.sleep(0.4)
        self.tmux("send-keys", "-t", "g", "Enter")

    def stop(self) -> None:
        try:
            stop_group(os.getpgid(self.pane_pid))
        except ProcessLookupError:
            pass
        try:
            server_pid = int(self.tmux("display-message", "-p", "#{pid}").strip())
            os.kill(server_pid, signal.SIGTERM)
        except (subprocess.CalledProcessError, ValueError, ProcessLookupError):
            pass


class Run:
    """One test's hub, fake API and Gemini session (`bob`)."""

    def __init__(self, name: str, rules: list[dict]):
        self.name = name
        self.root = fresh(name)
        self.hub = Hub(self.root)
        self.api = FakeGemini(self.root, {"rules": rules})
        self.tui = Session(self.root, self.api, self.hub, "bob")
        try:
            self.tui.wait_screen("Type your message", 90)
            self.hub.wait_online("bob", timeout=60)
        except Exception:
            self.stop()
            raise

    def send(self, text: str, *flags: str) -> tuple[str, str, float]:
        """`relay send bob TEXT --as alice [flags]`: (msg_id, status, time sent)."""
        started = time.time()
        out = self.hub.cli("send", "bob", text, "--as", "alice", *flags).stdout
        found = re.match(r"(\S+) (\w+)", out.strip())
        assert found, f"unexpected `relay send` output: {out!r}"
        return found.group(1), found.group(2), started

    def stop(self) -> None:
        for stop in (self.tui.stop, self.api.stop, self.hub.stop):
            try:
                stop()
            except Exception:  # noqa: BLE001 - stop everything we started
                pass


def function_call(name: str, args: dict) -> dict:
    return {"function_call": {"name": name, "args": args}}


def shell(seconds: int, marker: str) -> dict:
    return function_call("run_shell_command", {"command": f"sleep {seconds}; echo {marker}",
                                               "description": "wait a while"})


def contents_text(entry: dict) -> str:
    return json.dumps(entry["body"].get("contents", []))


def assert_new_once(api: FakeGemini, needle: str, what: str) -> None:
    """needle arrived as new text in exactly one request, and the last request's conversation
    holds it once (each request repeats the conversation so far)."""
    injected = [e["n"] for e in api.requests() if needle in e.get("last_text", "")]
    assert len(injected) == 1, f"{what}: {needle!r} arrived as new text in requests {injected}"
    last = api.requests()[-1]
    count = contents_text(last).count(needle)
    assert count == 1, f"{what}: {needle!r} {count} times in the last request #{last['n']}"


def user_text_of(entry: dict) -> str:
    """The text parts of the request's last content (a user message)."""
    content = entry["body"]["contents"][-1]
    assert content.get("role") == "user", f"last content of #{entry['n']} is {content.get('role')}"
    return "".join(part.get("text", "") for part in content.get("parts", []))


# --------------------------------------------------------------------------------------------


def test_busy_turn_end() -> None:
    name = "busy_turn_end"
    rules = [
        {"id": "busy", "when": {"last_contains": "BUSY-TURN"}, "reply": shell(6, "SLEPT-1")},
        {"id": "busy-done", "when": {"last_contains": "SLEPT-1"}, "reply": {"text": "busy done"}},
        {"id": "peer", "when": {"last_regex": r"PING-(?P<ping>\d+)",
                                "tool_offered": "mcp_relay_relay_send"},
         "reply": function_call("mcp_relay_relay_send", {"to": "alice", "text": "PONG-{{ping}}"})},
        {"id": "peer-done", "when": {"after": ["peer"], "last_contains": "mcp_relay_relay_send"},
         "reply": {"text": "answered alice"}},
    ]
    run = Run(name, rules)
    try:
        before = run.api.last_n()
        run.tui.type_line("BUSY-TURN")
        run.api.wait_for(rule="busy", after=before)
        time.sleep(1.5)  # the shell call runs
        msg_id, status, sent = run.send("PING-123")
        print(f"  relay send: {msg_id} {status}", flush=True)
        turn_end = run.api.wait_for(rule="busy-done", after=before, timeout=30)
        got = run.api.wait_for("PING-123", after=before, timeout=30)
        note(name, "send -> text in the model's request", got["t"] - sent)
        assert got["n"] > turn_end["n"], "the message arrived before the turn's end"
        text = user_text_of(got)
        assert text.startswith(HEADER), f"no Relay header: {text[:200]!r}"
        assert re.search(r'<peer-message from="alice"[^>]*msg_id="' + re.escape(msg_id) + '"',
                         text), f"no peer-message wrapper with {msg_id}: {text!r}"
        answered = run.api.wait_for(rule="peer-done", after=got["n"], timeout=30)
        assert "PONG-123" in contents_text(answered)
        inbox = run.hub.cli("inbox", "--as", "alice", "--json").stdout
        assert "PONG-123" in inbox, f"alice's inbox has no PONG-123: {inbox}"
        assert_new_once(run.api, "PING-123", name)
        screen = run.tui.screen()
        assert "Agent execution blocked" in screen, screen
        (run.root / "screen.txt").write_text(screen)
    finally:
        run.stop()


def test_urgent_tool() -> None:
    name = "urgent_tool"
    rules = [
        {"id": "busy", "when": {"last_contains": "URGENT-TURN"}, "reply": shell(6, "SLEPT-2")},
        {"id": "busy-done", "when": {"last_contains": "SLEPT-2"}, "reply": {"text": "urgent done"}},
    ]
    run = Run(name, rules)
    try:
        before = run.api.last_n()
        run.tui.type_line("URGENT-TURN")
        run.api.wait_for(rule="busy", after=before)
        time.sleep(1.5)
        msg_id, status, sent = run.send("URG-456", "--urgent")
        print(f"  relay send --urgent: {msg_id} {status}", flush=True)
        got = run.api.wait_for(rule="busy-done", after=before, timeout=30)
        note(name, "send -> tool result with the text", got["t"] - sent)
        result = json.dumps(got["body"]["contents"][-1])
        assert "URG-456" in result, f"not in the tool result: {result[:600]}"
        assert "<hook_context>" in result and "&lt;peer-message from=" in result, result[:800]
        time.sleep(3)  # the AfterAgent hook at the turn's end must not hand it over again
        assert_new_once(run.api, "URG-456", name)
    finally:
        run.stop()


def test_idle_next_turn() -> None:
    name = "idle_next_turn"
    rules = [
        {"id": "first", "when": {"last_contains": "FIRST-TURN"}, "reply": {"text": "first done"}},
        {"id": "next", "when": {"last_contains": "NEXT-TURN"}, "reply": {"text": "next done"}},
    ]
    run = Run(name, rules)
    try:
        run.tui.type_line("FIRST-TURN")
        run.api.wait_for(rule="first")
        run.tui.wait_screen("first done", 30)
        time.sleep(2)
        before = run.api.last_n()
        msg_id, status, sent = run.send("IDLE-789")
        print(f"  relay send to an idle Gemini: {msg_id} {status}", flush=True)
        time.sleep(8)
        assert run.api.last_n() == before, "an idle Gemini was woken (a new request came)"
        run.tui.type_line("NEXT-TURN")
        prompt = run.api.wait_for(rule="next", after=before, timeout=30)
        assert "IDLE-789" not in json.dumps(prompt["body"]["contents"][-1]), \
            "the message was put into the user's prompt"
        got = run.api.wait_for("IDLE-789", after=prompt["n"], timeout=30)
        note(name, "user's prompt -> text in the model's request", got["t"] - prompt["t"])
        assert user_text_of(got).startswith(HEADER)
        assert_new_once(run.api, "IDLE-789", name)
    finally:
        run.stop()


def test_latency() -> None:
    name = "latency"
    hold = 1.5
    rules = [{"id": "lat", "when": {"last_regex": r"LAT-TURN-(?P<i>\d+)"}, "times": None,
              "delay": hold, "reply": {"text": "held answer {{i}}"}}]
    run = Run(name, rules)
    send_to_request, end_to_request = [], []
    try:
        for i in range(20):
            before = run.api.last_n()
            run.tui.type_line(f"LAT-TURN-{i}")
            turn = run.api.wait_for(f"LAT-TURN-{i}", after=before, timeout=30)
            time.sleep(max(0.0, turn["t"] + 0.5 - time.time()))
            _, _, sent = run.send(f"LAT-MSG-{i}")
            got = run.api.wait_for(f"LAT-MSG-{i}", after=turn["n"], timeout=30)
            send_to_request.append(got["t"] - sent)
            end_to_request.append(got["t"] - (turn["t"] + hold))
            time.sleep(1.0)  # the continuation's answer ("OK.") and its AfterAgent ({})
        p50 = statistics.median(send_to_request)
        p90 = sorted(send_to_request)[int(0.9 * len(send_to_request)) - 1]
        note(name, "send -> request p50 (includes waiting for the turn's end)", p50)
        note(name, "send -> request p90", p90)
        note(name, "turn end -> request p50 (hook + Gemini's continuation)",
             statistics.median(end_to_request))
        note(name, "turn end -> request max", max(end_to_request))
        (run.root / "latency.json").write_text(json.dumps(
            {"send_to_request": send_to_request, "turn_end_to_request": end_to_request}, indent=1))
    finally:
        run.stop()


TESTS = {
    "busy_turn_end": test_busy_turn_end,
    "urgent_tool": test_urgent_tool,
    "idle_next_turn": test_idle_next_turn,
    "latency": test_latency,
}


def main() -> int:
    names = sys.argv[1:] or list(TESTS)
    unknown = [n for n in names if n not in TESTS]
    if unknown:
        print(f"unknown test(s): {', '.join(unknown)}; known: {', '.join(TESTS)}")
        return 2
    if os.environ.get("RELAY_TEST_REAL_CLIENTS") != "1":
        print("RELAY_TEST_REAL_CLIENTS is not 1: real-client tests skipped "
              "(needs tests/real/install-gemini.sh, a built relay, tmux and node)")
        print(f"0 passed, 0 failed, {len(names)} skipped")
        return 0
    print(f"relay: {relay_binary()}\ngemini: {gemini_binary()} ({GEMINI_VERSION} expected)\n"
          f"artifacts: {WORK}", flush=True)
    passed = failed = 0
    for name in names:
        started = time.time()
        try:
            TESTS[name]()
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {name} ({time.time() - started:.0f}s)", flush=True)
            traceback.print_exc()
        else:
            passed += 1
            print(f"PASS {name} ({time.time() - started:.0f}s)", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
