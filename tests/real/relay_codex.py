#!/usr/bin/env python3
"""The real Codex CLI with the real `relay` binary: messages reach an interactive Codex session's
model through the app-server daemon's control socket (`turn/start` on the session's thread).

    RELAY_TEST_REAL_CLIENTS=1 RELAY_TEST_RELAY_BIN=/path/relay python3 tests/real/relay_codex.py [test ...]

Without RELAY_TEST_REAL_CLIENTS=1 it prints "skipped" and exits 0. Codex is $RELAY_TEST_CODEX,
else the one tests/real/install-codex.sh puts in target/real-clients/codex; relay is
$RELAY_TEST_RELAY_BIN, else target/release/relay. Offline and loopback only: Codex talks to
tests/real/fake_openai_responses.py (a `model_providers.fake` entry with `wire_api =
"responses"`), with a private HOME and CODEX_HOME. Each test starts its own hub (`relay hub
--data-dir <root>/data --idle-exit 0 --ws-port 0`); the Codex session's MCP server is `relay mcp
--data-dir <root>/data --no-spawn --as bob --client codex` with `CODEX_HOME` in its env (Codex
passes only HOME/PATH/TERM-like variables to MCP servers). config.toml is written by hand here
(`fake_config`), not by `relay install codex`, because the test needs the private data dir and
name in the server's args.

A Codex TUI attaches to (or starts) the shared app-server daemon of its CODEX_HOME, and that
daemon, not the TUI, starts `relay mcp`; the daemon outlives the TUI. Every test stops the TUI,
then the daemon and its updater by the pids in `$CODEX_HOME/app-server-daemon/*.pid` (checked to
run a binary under this CODEX_HOME), then their children.

Artifacts stay in $RELAY_TEST_REAL_WORK (default /tmp/relay-real-codex)/<test>/:
`api-requests.jsonl` (what the model was sent), `data/logs/{hub,mcp}.log`, `tui-launch.sh`,
`codex/config.toml`.

Tests:
  idle_wake      The TUI as bob, idle after a first turn; `relay send bob WAKE-… --as alice` starts
                 a new turn: the model's next request carries the text inside
                 `<peer-message from="alice" … msg_id="<id>">`, once; the scripted answer (a
                 relay_reply tool call naming that msg_id) reaches alice's inbox.
  busy_join      bob's model runs an 8 s command; `relay send` 2 s into it: the text joins the
                 running turn (same `turn_id` in Codex's x-codex-turn-metadata header) and
                 reaches the model in its next request, after the command's output; once.
  latency        20 messages one after another to the idle session; prints the p50 (and max) of
                 `relay send` → the text in the model's next request.
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
from relay_claude import Hub, alive  # noqa: E402

CODEX_VERSION = "0.171.0"
WORK = Path(os.environ.get("RELAY_TEST_REAL_WORK")
            or Path(tempfile.gettempdir()) / "relay-real-codex")
READY = "Ask Codex to do anything"  # the TUI's empty prompt
API_KEY = "sk-relay-real-codex-test"
TIMINGS: dict[str, dict[str, float]] = {}


def codex_binary() -> str:
    explicit = os.environ.get("RELAY_TEST_CODEX")
    if explicit:
        return explicit
    path = REPO / "target" / "real-clients" / "codex" / "node_modules" / ".bin" / "codex"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run tests/real/install-codex.sh first")
    return str(path)


def note(test: str, what: str, seconds: float) -> None:
    TIMINGS.setdefault(test, {})[what] = round(seconds, 3)
    print(f"  {test}: {what} {seconds:.3f}s", flush=True)


def fresh(name: str) -> Path:
    root = WORK / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


class FakeResponses:
    """tests/real/fake_openai_responses.py as a child process in its own process group."""

    def __init__(self, workdir: Path, script: dict, name: str = "api"):
        self.dir = workdir
        self.log_path = workdir / f"{name}-requests.jsonl"
        port_file = workdir / f"{name}.port"
        script_path = workdir / f"{name}-script.json"
        for path in (self.log_path, port_file):
            path.unlink(missing_ok=True)
        script_path.write_text(json.dumps(script, indent=2))
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_openai_responses.py"), "--script", str(script_path),
             "--log", str(self.log_path), "--port-file", str(port_file)],
            stdout=open(workdir / f"{name}.out", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_until(lambda: port_file.exists() or self.proc.poll() is not None, 10,
                   what="the fake Responses API port file")
        if self.proc.poll() is not None:
            raise RuntimeError(f"fake API exited: {(workdir / f'{name}.out').read_text()}")
        self.port = int(port_file.read_text())
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def requests(self, kind: str = "main") -> list[dict]:
        if not self.log_path.exists():
            return []
        out = []
        with open(self.log_path, encoding="utf-8") as log:
            for line in log:
                if line.endswith("\n"):
                    entry = json.loads(line)
                    if entry["path"].endswith("/responses") and (kind == "any" or entry.get("kind") == kind):
                        out.append(entry)
        return out

    def last_n(self) -> int:
        return max((e["n"] for e in self.requests("any")), default=0)

    def find(self, needle: str | None = None, after: int = 0, predicate=None) -> dict | None:
        for entry in self.requests():
            if entry["n"] <= after:
                continue
            if needle is not None and needle not in entry.get("last_text", ""):
                continue
            if predicate is not None and not predicate(entry):
                continue
            return entry
        return None

    def wait_for(self, needle: str | None = None, timeout: float = 60, after: int = 0,
                 predicate=None, interval: float = 0.02) -> dict:
        return wait_until(lambda: self.find(needle, after, predicate), timeout, interval=interval,
                          what=f"a model request with {needle!r} as new text")

    def stop(self) -> None:
        stop_group(self.proc.pid)
        self.proc.wait(5)


class CodexScratch:
    """A private HOME and CODEX_HOME, a project dir, and the config.toml wiring relay in."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.codex_home = root / "codex"
        self.project = root / "project"
        for path in (self.home, self.codex_home, self.project):
            path.mkdir(parents=True, exist_ok=True)

    def fake_config(self, api: FakeResponses, relay_server: dict) -> Path:
        env = "".join(f"{key} = {toml_string(value)}\n" for key, value in relay_server["env"].items())
        text = f"""model = "fake-model"
model_provider = "fake"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[analytics]
enabled = false

[model_providers.fake]
name = "fake"
base_url = {toml_string(api.base_url)}
wire_api = "responses"
env_key = "FAKE_OPENAI_API_KEY"

[projects.{toml_string(str(self.project))}]
trust_level = "trusted"

[mcp_servers.relay]
command = {toml_string(relay_server["command"])}
args = [{", ".join(toml_string(arg) for arg in relay_server["args"])}]

[mcp_servers.relay.env]
{env}"""
        path = self.codex_home / "config.toml"
        path.write_text(text)
        return path

    def env(self) -> dict:
        keep = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS")
        env = {key: os.environ[key] for key in keep if key in os.environ}
        env.update({
            "HOME": str(self.home),
            "CODEX_HOME": str(self.codex_home),
            "FAKE_OPENAI_API_KEY": API_KEY,
            "TERM": "xterm-256color",
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
        })
        return env

    def daemon_pids(self) -> list[int]:
        """The app-server daemon and its updater of this CODEX_HOME, when running."""
        pids = []
        for name in ("daemon.pid", "daemon-updater.pid"):
            path = self.codex_home / "app-server-daemon" / name
            try:
                pid = int(json.loads(path.read_text())["pid"])
                exe = os.path.realpath(f"/proc/{pid}/exe")
            except (OSError, ValueError, KeyError):
                continue
            if exe.startswith(str(self.codex_home)) and alive(pid):
                pids.append(pid)
        return pids

    def stop_daemon(self) -> None:
        """SIGTERM the daemon, its updater and their children (relay mcp), SIGKILL leftovers."""
        pids = self.daemon_pids()
        children = [child for pid in pids for child in children_of(pid)]
        for pid in pids + children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 5
        while time.time() < deadline and any(alive(pid) for pid in pids + children):
            time.sleep(0.1)
        for pid in pids + children:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def children_of(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class TmuxCodex:
    """The interactive Codex TUI in a private tmux server (its own socket under the scratch)."""

    def __init__(self, scratch: CodexScratch, name: str = "tui", width: int = 160, height: int = 50):
        self.scratch = scratch
        self.socket = scratch.root / f"{name}.tmux"
        self.name = name
        launcher = scratch.root / f"{name}-launch.sh"
        exports = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in scratch.env().items())
        launcher.write_text("#!/bin/sh\n" + exports + f"cd {shlex.quote(str(scratch.project))}\n"
                            + f"exec {shlex.quote(codex_binary())}\n")
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
                          what=f"{text!r} on the Codex screen")

    def stop(self) -> None:
        """Kills the TUI (the pane's process group) and this private tmux server."""
        try:
            stop_group(os.getpgid(self.pane_pid))
        except ProcessLookupError:
            pass
        try:
            server_pid = int(self.tmux("display-message", "-p", "#{pid}").strip())
        except (subprocess.CalledProcessError, ValueError):
            return
        try:
            os.kill(server_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def relay_server(hub: Hub, scratch: CodexScratch, name: str) -> dict:
    return {"command": hub.binary,
            "args": ["mcp", "--data-dir", str(hub.data), "--no-spawn", "--as", name,
                     "--client", "codex"],
            "env": {"CODEX_HOME": str(scratch.codex_home),
                    "RELAY_LOG": os.environ.get("RELAY_LOG", "relay=debug")}}


def start_session(root: Path, script: dict, name: str = "bob"):
    """Hub, fake model, config and an idle TUI after one first turn: (hub, api, scratch, tui)."""
    hub = Hub(root)
    scratch = CodexScratch(root)
    api = FakeResponses(root, script)
    scratch.fake_config(api, relay_server(hub, scratch, name))
    tui = TmuxCodex(scratch)
    return hub, api, scratch, tui


def first_turn(tui: TmuxCodex, api: FakeResponses) -> None:
    tui.wait_screen(READY, 60)
    before = api.last_n()
    tui.type_line("FIRST-TURN")
    api.wait_for("FIRST-TURN", timeout=60, after=before)
    tui.wait_screen("first turn done", 60)
    time.sleep(1)  # the thread goes idle after the answer is shown


def first_turn_rule() -> dict:
    return {"id": "first", "when": {"last_contains": "FIRST-TURN"}, "reply": {"text": "first turn done"}}


def wrapped(sender: str, msg_id: str, text: str) -> str:
    return (r'<peer-message from="' + re.escape(sender) + r'"[^>]*\bmsg_id="' + re.escape(msg_id)
            + r'"[^>]*>' + re.escape(text) + r"</peer-message>")


def stop_all(hub, api, scratch, tui) -> None:
    for step in (lambda: tui and tui.stop(), lambda: scratch and scratch.stop_daemon(),
                 lambda: api and api.stop(), lambda: hub and hub.stop()):
        try:
            step()
        except Exception:  # noqa: BLE001 - clean up everything even when one step fails
            traceback.print_exc()


# --------------------------------------------------------------------------------------------


def test_idle_wake() -> None:
    name = "idle_wake"
    root = fresh(name)
    msg_id_re = r'msg_id=(?:&quot;|")(?P<msg_id>m-[^"&]+)'
    script = {"rules": [
        first_turn_rule(),
        {"id": "answer", "when": {"last_contains": "WAKE-CODEX-1", "last_regex": msg_id_re,
                                  "tool_offered": "mcp__relay.relay_reply"},
         "reply": {"tool_call": {"namespace": "mcp__relay", "name": "relay_reply",
                                 "arguments": {"ask_id": "{{msg_id}}", "text": "CODEX-ANSWER-1"}}}},
        {"id": "no-tools", "when": {"last_contains": "WAKE-CODEX-1"}, "reply": {"text": "NO-RELAY-TOOLS"}},
        {"id": "answered", "when": {"after": ["answer"]}, "reply": {"text": "answered alice"}},
    ]}
    hub = api = scratch = tui = None
    try:
        started = time.time()
        hub, api, scratch, tui = start_session(root, script)
        hub.wait_online("bob", timeout=60)
        note(name, "TUI started -> bob online", time.time() - started)
        first_turn(tui, api)
        before = api.last_n()
        sent_at = time.time()
        msg_id, status, out = hub.send("bob", "WAKE-CODEX-1")
        note(name, "relay send answered", time.time() - sent_at)
        woke = api.wait_for("WAKE-CODEX-1", timeout=30, after=before)
        note(name, "send -> model request", woke["t"] - sent_at)
        assert re.search(wrapped("alice", msg_id, "WAKE-CODEX-1"), woke["last_text"]), woke["last_text"]
        assert woke["rule"] == "answer", f"answered by rule {woke['rule']} (relay tools offered?)"
        assert status in ("delivered", "read"), f"relay send printed {out!r}"
        api.wait_for(timeout=30, predicate=lambda e: e["rule"] == "answered")
        inbox = wait_until(lambda: (lambda out: out if "CODEX-ANSWER-1" in out else None)(
            hub.cli("inbox", "--as", "alice", "--json").stdout), 30, interval=0.5,
            what="the answer in alice's inbox")
        assert "CODEX-ANSWER-1" in inbox
        tui.wait_screen("answered alice", 30)
        time.sleep(3)  # a duplicate delivery would show by now
        injected = [e["n"] for e in api.requests() if f'msg_id="{msg_id}"' in e.get("last_text", "")]
        assert len(injected) == 1, f"the message arrived as new text in requests {injected}"
    finally:
        stop_all(hub, api, scratch, tui)


def turn_id(entry: dict) -> str | None:
    """The turn a model request belongs to, from Codex's `x-codex-turn-metadata` header."""
    try:
        return json.loads(entry["headers"]["x-codex-turn-metadata"])["turn_id"]
    except (KeyError, ValueError, TypeError):
        return None


def test_busy_join() -> None:
    name = "busy_join"
    root = fresh(name)
    script = {"rules": [
        first_turn_rule(),
        {"id": "busy", "when": {"last_contains": "BUSY-TURN"},
         "reply": {"tool_call": {"name": "exec_command",
                                 "arguments": {"cmd": "sleep 8; echo slept", "yield_time_ms": 30000}}}},
        {"id": "joined", "when": {"after": ["busy"], "last_contains": "JOIN-CODEX-1"},
         "reply": {"text": "saw the join"}},
        {"id": "busy-done", "when": {"after": ["busy"], "not_after": ["joined"]},
         "reply": {"text": "busy done without the join"}},
    ]}
    hub = api = scratch = tui = None
    try:
        hub, api, scratch, tui = start_session(root, script)
        hub.wait_online("bob", timeout=60)
        first_turn(tui, api)
        tui.type_line("BUSY-TURN")
        busy = api.wait_for("BUSY-TURN", timeout=60)
        time.sleep(2)  # well inside the 8 s command
        sent_at = time.time()
        msg_id, status, out = hub.send("bob", "JOIN-CODEX-1")
        note(name, "relay send answered", time.time() - sent_at)
        assert status in ("delivered", "read"), f"relay send printed {out!r}"
        joined = api.wait_for("JOIN-CODEX-1", timeout=30, after=busy["n"])
        note(name, "send -> model request (after the running command)", joined["t"] - sent_at)
        assert joined["rule"] == "joined", joined["rule"]
        assert "slept" in joined["last_text"], "not after the command's output"
        assert joined["last_text"].index("slept") < joined["last_text"].index("JOIN-CODEX-1")
        assert turn_id(joined) and turn_id(joined) == turn_id(busy), \
            f"a new turn {turn_id(joined)} instead of joining {turn_id(busy)}"
        assert re.search(wrapped("alice", msg_id, "JOIN-CODEX-1"), joined["last_text"])
        tui.wait_screen("saw the join", 30)
        time.sleep(3)
        injected = [e["n"] for e in api.requests() if f'msg_id="{msg_id}"' in e.get("last_text", "")]
        assert len(injected) == 1, f"the message arrived as new text in requests {injected}"
    finally:
        stop_all(hub, api, scratch, tui)


def test_latency() -> None:
    name = "latency"
    root = fresh(name)
    count = int(os.environ.get("RELAY_TEST_LATENCY_MESSAGES", "20"))
    hub = api = scratch = tui = None
    try:
        hub, api, scratch, tui = start_session(root, {"rules": [first_turn_rule()]})
        hub.wait_online("bob", timeout=60)
        first_turn(tui, api)
        samples = []
        for index in range(count):
            text = f"LATENCY-{index:02d}-{os.urandom(3).hex()}"
            before = api.last_n()
            sent_at = time.time()
            _, status, out = hub.send("bob", text)
            seen = api.wait_for(text, timeout=30, after=before)
            samples.append(seen["t"] - sent_at)
            time.sleep(0.3)  # let the turn the message started end ("OK.")
        samples.sort()
        p50 = statistics.median(samples)
        note(name, f"p50 of {count} (send -> text in the model's next request)", p50)
        note(name, "max", samples[-1])
        assert p50 < 5, f"p50 {p50:.2f}s"
    finally:
        stop_all(hub, api, scratch, tui)


TESTS = {"idle_wake": test_idle_wake, "busy_join": test_busy_join, "latency": test_latency}


def main() -> int:
    names = sys.argv[1:] or list(TESTS)
    unknown = [n for n in names if n not in TESTS]
    if unknown:
        print(f"unknown test(s): {', '.join(unknown)}; known: {', '.join(TESTS)}")
        return 2
    if os.environ.get("RELAY_TEST_REAL_CLIENTS") != "1":
        print("RELAY_TEST_REAL_CLIENTS is not 1: real-client tests skipped "
              "(needs tests/real/install-codex.sh, a built relay and tmux)")
        print(f"0 passed, 0 failed, {len(names)} skipped")
        return 0
    print(f"codex: {codex_binary()}\nartifacts: {WORK}", flush=True)
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
