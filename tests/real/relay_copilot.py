#!/usr/bin/env python3
"""The real GitHub Copilot CLI with the real `relay` binary: messages reach the model through
the extension Relay installs (assets/copilot/extension.mjs: `relay deliver --client copilot` →
`session.send`), offline against tests/real/fake_openai_copilot.py.

    tests/real/install-copilot.sh          # once
    RELAY_TEST_REAL_CLIENTS=1 RELAY_TEST_RELAY_BIN=/path/relay PYTHONDONTWRITEBYTECODE=1 \\
      python3 tests/real/relay_copilot.py [test ...]

Without RELAY_TEST_REAL_CLIENTS=1 it prints "skipped" and exits 0. The relay binary is
$RELAY_TEST_RELAY_BIN, else target/release/relay; Copilot is $RELAY_TEST_COPILOT, else what
install-copilot.sh put in target/real-clients/copilot, run with XDG_CACHE_HOME=
target/real-clients/copilot-cache (its unpacked JavaScript, shared by every run). Each test starts
its own hub (`relay hub --data-dir <root>/data`), sets Copilot up in a scratch COPILOT_HOME with
`relay install copilot` (mcp-config.json, extensions/relay/extension.mjs, settings.json
`experimental: true`; written by hand, the same three files, when this relay has no `install
copilot`) and runs the interactive TUI in a private tmux with `--allow-all`; the session's name
comes from RELAY_PEER_ID in Copilot's environment (Copilot passes RELAY_* to its MCP servers and
extensions), the data dir from RELAY_HOME. Artifacts stay in $RELAY_TEST_REAL_WORK (default
/tmp/relay-real-copilot)/<test>/: `*-requests.jsonl` (what the model was sent), `data/logs/`,
`extension.log`, `copilot-home/logs/` (Copilot's own logs, one per process), `*-launch.sh`.

Tests:
  tui_idle_wake   The TUI as bob; a first typed turn calls relay_peers (my_delivery is
                  copilot-extension), then idle. `relay send bob WAKE-… --as alice` starts a new
                  turn: its request's last (user) message carries `<peer-message from="alice" …
                  msg_id="<id>">WAKE-…</peer-message>`; the model's scripted answer, a
                  relay_send to alice with reply_to, goes through (alice's inbox has it); the
                  id is in the conversation exactly once; the extension's ack `read` reached
                  relay mcp (mcp.log: `handed to the model msg_id=… path="copilot-extension"`).
  busy_enqueue    bob busy in an 8 s shell command; a plain `relay send` waits for the turn to
                  end (session.send mode enqueue) and then starts a turn of its own: it is not in
                  the request that carries the shell result, but in the next one.
  latency         20 messages to an idle bob, one after the other: relay send → the text in the
                  model's next request; prints p50 (and min, p90, max).
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
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from claude_session import REPO, stop_group, wait_until  # noqa: E402
from relay_claude import Hub, relay_binary, wrapped  # noqa: E402

WORK = Path(os.environ.get("RELAY_TEST_REAL_WORK")
            or Path(tempfile.gettempdir()) / "relay-real-copilot")
CLIENTS = REPO / "target" / "real-clients"
NATIVE = Path("node_modules") / "@github" / "copilot-linux-x64" / "copilot"
API_KEY = "sk-relay-real-copilot-test-key"
MODEL = "gpt-4.1"  # a model id Copilot knows (token limits); the fake answers any
READY = "/ commands"  # the TUI's footer once it takes input
PLACEHOLDER = "__RELAY_DELIVER_COMMAND__"
TIMINGS: dict[str, dict[str, float]] = {}


def copilot_binary() -> str:
    path = os.environ.get("RELAY_TEST_COPILOT") or str(CLIENTS / "copilot" / NATIVE)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} is missing: run tests/real/install-copilot.sh first")
    return path


def copilot_cache() -> str:
    return os.environ.get("RELAY_TEST_COPILOT_CACHE") or str(CLIENTS / "copilot-cache")


def note(test: str, what: str, seconds: float) -> None:
    TIMINGS.setdefault(test, {})[what] = round(seconds, 3)
    print(f"  {test}: {what} {seconds:.3f}s", flush=True)


def fresh(name: str) -> Path:
    root = WORK / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


def tool_call(name: str, arguments: dict) -> dict:
    return {"tool_call": {"name": name, "arguments": arguments}}


class FakeOpenAI:
    """tests/real/fake_openai_copilot.py as a child process in its own process group."""

    def __init__(self, workdir: Path, script: dict, name: str = "api"):
        self.dir = Path(workdir)
        self.log_path = self.dir / f"{name}-requests.jsonl"
        port_file = self.dir / f"{name}.port"
        script_path = self.dir / f"{name}-script.json"
        for path in (self.log_path, port_file):
            path.unlink(missing_ok=True)
        script_path.write_text(json.dumps(script, indent=2))
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_openai_copilot.py"), "--script", str(script_path),
             "--log", str(self.log_path), "--port-file", str(port_file)],
            stdout=open(self.dir / f"{name}.out", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_until(lambda: port_file.exists() or self.proc.poll() is not None, 10,
                   what="the fake API port file")
        if self.proc.poll() is not None:
            raise RuntimeError(f"fake API exited: {(self.dir / f'{name}.out').read_text()}")
        self.url = f"http://127.0.0.1:{int(port_file.read_text())}/v1"

    def requests(self) -> list[dict]:
        """Logged chat-completion requests of the agent loop (they offer tools)."""
        if not self.log_path.exists():
            return []
        # Only whole lines: the fake may be halfway through appending one.
        entries = [json.loads(line) for line in self.log_path.read_text().splitlines(keepends=True)
                   if line.endswith("\n") and line.strip()]
        return [e for e in entries if e["path"].endswith("/chat/completions") and e.get("kind") == "main"]

    def last_n(self) -> int:
        return max((e["n"] for e in self.requests()), default=0)

    def wait_for(self, substring: str | None = None, timeout: float = 60, after: int = 0,
                 predicate=None) -> dict:
        """The first request numbered > after whose new text (last_text) holds substring."""
        def find():
            for entry in self.requests():
                if entry["n"] <= after:
                    continue
                if substring is not None and substring not in entry.get("last_text", ""):
                    continue
                if predicate is not None and not predicate(entry):
                    continue
                return entry
            return None
        return wait_until(find, timeout, interval=0.02, what=f"a request with {substring!r}")

    def stop(self) -> None:
        stop_group(self.proc.pid)
        self.proc.wait(5)


class CopilotScratch:
    """A private HOME, COPILOT_HOME, TMPDIR and project for one Copilot session."""

    def __init__(self, root: Path, data_dir: Path, name: str):
        self.root = root
        self.home = root / "home"
        self.copilot_home = root / "copilot-home"
        self.tmp = root / "tmp"
        self.project = root / "project"
        self.data_dir = data_dir
        self.name = name
        for path in (self.home, self.copilot_home, self.tmp, self.project):
            path.mkdir(parents=True, exist_ok=True)

    def install(self) -> str:
        """Sets Relay up in this COPILOT_HOME: `relay install copilot`, or by hand when this
        relay has none. Trusts the project folder (Copilot's own dialog otherwise). Returns how."""
        relay = relay_binary()
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home),
               "COPILOT_HOME": str(self.copilot_home), "RELAY_HOME": str(self.data_dir)}
        helped = subprocess.run([relay, "install", "--help"], capture_output=True, text=True)
        if re.search(r"^\s*-?\s*copilot\b", helped.stdout, re.M):
            done = subprocess.run([relay, "install", "copilot"], cwd=self.project, env=env,
                                  capture_output=True, text=True, timeout=60)
            (self.root / "install.out").write_text(done.stdout + done.stderr)
            assert done.returncode == 0, f"relay install copilot failed: {done.stdout}{done.stderr}"
            how = "relay install copilot"
        else:
            (self.copilot_home / "mcp-config.json").write_text(json.dumps({"mcpServers": {"relay": {
                "type": "local", "command": relay, "args": ["mcp", "--client", "copilot"],
                "tools": ["*"]}}}, indent=2))
            extension = self.copilot_home / "extensions" / "relay" / "extension.mjs"
            extension.parent.mkdir(parents=True, exist_ok=True)
            source = (REPO / "assets" / "copilot" / "extension.mjs").read_text()
            command = json.dumps([relay, "deliver", "--client", "copilot"])
            extension.write_text(source.replace(PLACEHOLDER, command, 1))
            (self.copilot_home / "settings.json").write_text(json.dumps({"experimental": True}))
            how = "by hand (this relay has no `install copilot`)"
        for path in ("mcp-config.json", "extensions/relay/extension.mjs", "settings.json"):
            assert (self.copilot_home / path).exists(), f"{how}: {path} missing"
        assert PLACEHOLDER not in (self.copilot_home / "extensions/relay/extension.mjs").read_text()
        assert json.loads((self.copilot_home / "settings.json").read_text()).get("experimental") is True
        config = self.copilot_home / "config.json"
        config.write_text(json.dumps({"trustedFolders": [str(self.project)]}))
        return how

    def env(self, api: FakeOpenAI) -> dict:
        """Copilot's whole environment (the launcher runs it under `env -i`)."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "HOME": str(self.home),
            "COPILOT_HOME": str(self.copilot_home),
            "TMPDIR": str(self.tmp),
            "XDG_CACHE_HOME": copilot_cache(),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "COPILOT_OFFLINE": "true",
            "COPILOT_AUTO_UPDATE": "false",
            "COPILOT_PROVIDER_TYPE": "openai",
            "COPILOT_PROVIDER_BASE_URL": api.url,
            "COPILOT_PROVIDER_API_KEY": API_KEY,
            "COPILOT_MODEL": MODEL,
            "RELAY_HOME": str(self.data_dir),
            "RELAY_PEER_ID": self.name,
            "RELAY_LOG": os.environ.get("RELAY_LOG", "relay=debug"),
            "RELAY_EXTENSION_LOG": str(self.root / "extension.log"),
        }


class TmuxCopilot:
    """The interactive TUI in a private tmux server (its socket under the scratch root)."""

    def __init__(self, scratch: CopilotScratch, api: FakeOpenAI, name: str = "tui",
                 width: int = 160, height: int = 50):
        self.socket = scratch.root / f"{name}.tmux"
        self.name = name
        command = [copilot_binary(), "--allow-all"]
        launcher = scratch.root / f"{name}-launch.sh"
        exports = "".join(f"export {key}={shlex.quote(value)}\n"
                          for key, value in scratch.env(api).items())
        launcher.write_text("#!/bin/sh\n" + exports + f"cd {shlex.quote(str(scratch.project))}\n"
                            + "exec " + " ".join(shlex.quote(part) for part in command) + "\n")
        launcher.chmod(0o755)
        self.tmux("new-session", "-d", "-s", name, "-x", str(width), "-y", str(height),
                  f"env -i sh {shlex.quote(str(launcher))}")
        self.tmux("set-option", "-t", name, "remain-on-exit", "on")
        self.pane_pid = int(self.tmux("display-message", "-p", "-t", name, "#{pane_pid}").strip())

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket)] + list(args), check=True,
                              capture_output=True, text=True).stdout

    def type_line(self, text: str, settle: float = 0.5) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)
        time.sleep(settle)
        self.tmux("send-keys", "-t", self.name, "Enter")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def wait_screen(self, text: str, timeout: float = 30) -> str:
        return wait_until(lambda: (lambda s: s if text in s else None)(self.screen()), timeout,
                          interval=0.1, what=f"{text!r} on the Copilot screen")

    def stop(self) -> None:
        """Stops Copilot (its process group: the pane; its MCP servers and extensions are its
        children and go with it), then this private tmux server."""
        try:
            stop_group(os.getpgid(self.pane_pid), grace=6)
        except ProcessLookupError:
            pass
        try:
            server = int(self.tmux("display-message", "-p", "#{pid}").strip())
            os.kill(server, signal.SIGTERM)
        except (subprocess.CalledProcessError, ValueError, ProcessLookupError):
            pass


def message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def new_texts(api: FakeOpenAI, needle: str) -> list[int]:
    return [e["n"] for e in api.requests() if needle in e.get("last_text", "")]


def assert_once(api: FakeOpenAI, needle: str, what: str) -> None:
    """needle arrived as new text in exactly one request, and the latest request's whole
    conversation holds it exactly once."""
    arrived = new_texts(api, needle)
    assert len(arrived) == 1, f"{what}: {needle!r} arrived as new text in requests {arrived}"
    last = api.requests()[-1]
    count = sum(message_text(m).count(needle) for m in last["body"]["messages"])
    assert count == 1, f"{what}: {needle!r} {count} times in the last request {last['n']}"


def tool_result(entry: dict) -> dict:
    """The JSON of the last `tool` message in a request (Copilot's tool result)."""
    for message in reversed(entry["body"]["messages"]):
        if message.get("role") == "tool":
            return json.loads(message_text(message))
    raise AssertionError(f"no tool message in request {entry['n']}")


def last_user_text(entry: dict) -> str:
    message = entry["body"]["messages"][-1]
    assert message["role"] == "user", f"request {entry['n']} ends with {message['role']}"
    return message_text(message)


class Session:
    """One Copilot TUI set up for Relay: scratch, fake model, TUI."""

    def __init__(self, test: str, root: Path, hub: Hub, name: str, rules: list[dict]):
        self.scratch = CopilotScratch(root / name, hub.data, name)
        self.how = self.scratch.install()
        print(f"  {test}: Relay set up {self.how}", flush=True)
        self.api = FakeOpenAI(root, {"rules": rules}, name=name)
        started = time.time()
        self.tui = TmuxCopilot(self.scratch, self.api, name=f"{name}-tui")
        self.tui.wait_screen(READY, 60)
        hub.wait_online(name)
        note(test, "TUI ready and online", time.time() - started)
        # relay deliver has found its session once the extension logged the welcome line.
        wait_until(lambda: "copilot-extension" in self.extension_log(), 30,
                   what="the extension's relay deliver to connect (welcome)")

    def extension_log(self) -> str:
        path = self.scratch.root / "extension.log"
        return path.read_text() if path.exists() else ""

    def first_turn(self) -> dict:
        """Types FIRST-TURN (the model calls relay_peers, then says so); returns relay_peers."""
        before = self.api.last_n()
        self.tui.type_line("FIRST-TURN")
        done = self.api.wait_for(timeout=60, after=before, predicate=lambda e: e["rule"] == "first-done")
        self.tui.wait_screen("first turn done", 30)
        time.sleep(0.5)  # session.idle follows the answer
        return tool_result(done)

    def stop(self) -> None:
        self.tui.stop()
        self.api.stop()


def first_turn_rules() -> list[dict]:
    return [
        {"id": "first", "when": {"last_contains": "FIRST-TURN"},
         "reply": tool_call("relay-relay_peers", {})},
        {"id": "first-done", "when": {"after": ["first"], "not_after": ["first-done"]},
         "reply": {"text": "first turn done"}},
    ]


# --------------------------------------------------------------------------------------------


def test_tui_idle_wake() -> None:
    name = "tui_idle_wake"
    root = fresh(name)
    hub = Hub(root)
    rules = first_turn_rules() + [
        {"id": "woke", "when": {"last_regex": r'<peer-message from="alice"[^>]*msg_id="(?P<msg>[^"]+)"[^>]*>WAKE-456<'},
         "reply": tool_call("relay-relay_send", {"to": "alice", "text": "PONG-789", "reply_to": "{{msg}}"})},
        {"id": "answered", "when": {"after": ["woke"]}, "reply": {"text": "answered alice"}},
    ]
    bob = None
    try:
        bob = Session(name, root, hub, "bob", rules)
        peers = bob.first_turn()
        assert peers.get("my_delivery") == "copilot-extension", f"relay_peers: {peers}"
        before = bob.api.last_n()
        sent_at = time.time()
        msg_id, status, out = hub.send("bob", "WAKE-456")
        note(name, f"relay send answered ({status})", time.time() - sent_at)
        woke = bob.api.wait_for("WAKE-456", timeout=30, after=before)
        note(name, "send -> wake request", woke["t"] - sent_at)
        text = last_user_text(woke)
        assert re.search(wrapped("alice", msg_id, "WAKE-456"), text), text
        assert woke["rule"] == "woke", f"answered by {woke['rule']}"
        answered = bob.api.wait_for(timeout=30, predicate=lambda e: e["rule"] == "answered")
        result = tool_result(answered)
        assert result.get("ok") is True, f"relay_send from bob's model: {result}"
        note(name, "send -> the model's relay_send answered", answered["t"] - sent_at)
        bob.tui.wait_screen("answered alice", 30)
        inbox = json.loads(hub.cli("inbox", "--as", "alice", "--json").stdout)
        pongs = [m for m in inbox.get("messages", []) if "PONG-789" in m.get("text", "")]
        assert len(pongs) == 1, f"alice's inbox: {inbox}"
        time.sleep(3)  # a duplicate would show up by now
        assert_once(bob.api, f'msg_id="{msg_id}"', "bob")
        # The extension's ack `read` came back: relay mcp marks it read at the hub and logs it.
        mcp_log = hub.data / "logs" / "mcp.log"
        handed = f'handed to the model msg_id={msg_id} path="copilot-extension"'
        wait_until(lambda: mcp_log.exists() and handed in mcp_log.read_text(), 10,
                   what=f"relay mcp to log {handed!r}")
    finally:
        if bob is not None:
            bob.stop()
        hub.stop()


def test_busy_enqueue() -> None:
    name = "busy_enqueue"
    root = fresh(name)
    hub = Hub(root)
    rules = first_turn_rules() + [
        {"id": "busy", "when": {"last_contains": "BUSY-TURN"},
         "reply": tool_call("bash", {"command": "sleep 8; echo slept", "description": "wait a while"})},
        {"id": "busy-done", "when": {"after": ["busy"], "not_after": ["busy-done"]},
         "reply": {"text": "busy turn done"}},
        {"id": "saw", "when": {"last_contains": "QUEUED-321"}, "reply": {"text": "SAW-QUEUED"}},
    ]
    bob = None
    try:
        bob = Session(name, root, hub, "bob", rules)
        bob.first_turn()
        before = bob.api.last_n()
        bob.tui.type_line("BUSY-TURN")
        bob.api.wait_for(timeout=30, after=before, predicate=lambda e: e["rule"] == "busy")
        time.sleep(2)  # inside the 8 s shell command
        sent_at = time.time()
        msg_id, status, _ = hub.send("bob", "QUEUED-321")
        note(name, f"relay send answered ({status})", time.time() - sent_at)
        done = bob.api.wait_for(timeout=30, after=before, predicate=lambda e: e["rule"] == "busy-done")
        assert "slept" in done["last_text"] and "QUEUED-321" not in done["last_text"], \
            f"the shell result's request {done['n']}: {done['last_text'][:300]!r}"
        saw = bob.api.wait_for("QUEUED-321", timeout=30, after=done["n"])
        note(name, "send -> request (after the busy turn)", saw["t"] - sent_at)
        note(name, "busy turn's end -> request", saw["t"] - done["t"])
        assert re.search(wrapped("alice", msg_id, "QUEUED-321"), last_user_text(saw))
        bob.tui.wait_screen("SAW-QUEUED", 30)
        time.sleep(2)
        assert_once(bob.api, f'msg_id="{msg_id}"', "bob")
    finally:
        if bob is not None:
            bob.stop()
        hub.stop()


def test_latency(count: int = 20) -> None:
    name = "latency"
    root = fresh(name)
    hub = Hub(root)
    rules = first_turn_rules() + [
        {"id": "lat", "when": {"last_regex": r"LAT-(?P<i>\d+)-"}, "reply": {"text": "ACK-{{i}}"},
         "times": None},
    ]
    bob = None
    try:
        bob = Session(name, root, hub, "bob", rules)
        bob.first_turn()
        latencies = []
        for i in range(count):
            marker = f"LAT-{i:02d}-"
            before = bob.api.last_n()
            sent_at = time.time()
            hub.send("bob", marker + "x")
            seen = bob.api.wait_for(marker, timeout=30, after=before)
            latencies.append(seen["t"] - sent_at)
            bob.tui.wait_screen(f"ACK-{i:02d}", 30)
            time.sleep(0.4)  # let the turn end (session.idle) before the next one
        for i in range(count):
            assert len(new_texts(bob.api, f"LAT-{i:02d}-")) == 1, f"LAT-{i:02d} not exactly once"
        ordered = sorted(latencies)
        p50 = statistics.median(ordered)
        p90 = ordered[max(0, int(round(0.9 * len(ordered))) - 1)]
        note(name, f"p50 send -> next request over {count}", p50)
        print(f"  {name}: min {ordered[0]:.3f}s p90 {p90:.3f}s max {ordered[-1]:.3f}s "
              f"all {[round(x, 3) for x in latencies]}", flush=True)
    finally:
        if bob is not None:
            bob.stop()
        hub.stop()


TESTS = {"tui_idle_wake": test_tui_idle_wake, "busy_enqueue": test_busy_enqueue,
         "latency": test_latency}


def main() -> int:
    names = sys.argv[1:] or list(TESTS)
    unknown = [n for n in names if n not in TESTS]
    if unknown:
        print(f"unknown test(s): {', '.join(unknown)}; known: {', '.join(TESTS)}")
        return 2
    if os.environ.get("RELAY_TEST_REAL_CLIENTS") != "1":
        print("RELAY_TEST_REAL_CLIENTS is not 1: real-client tests skipped "
              "(needs tests/real/install-copilot.sh, a built relay and tmux)")
        print(f"0 passed, 0 failed, {len(names)} skipped")
        return 0
    print(f"relay: {relay_binary()}\ncopilot: {copilot_binary()}\nartifacts: {WORK}", flush=True)
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
