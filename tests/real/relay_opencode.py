#!/usr/bin/env python3
"""The real OpenCode with the real `relay` binary: messages reach the model through the plugin
`relay install opencode` puts in OpenCode's config (assets/opencode/relay.js), which runs
`relay deliver --client opencode` and calls `client.session.promptAsync` (docs/delivery.md).

    RELAY_TEST_REAL_CLIENTS=1 RELAY_TEST_RELAY_BIN=/path/relay python3 tests/real/relay_opencode.py [test ...]

Without RELAY_TEST_REAL_CLIENTS=1 it prints "skipped" and exits 0. Needs tmux and OpenCode
(tests/real/install-opencode.sh, or $RELAY_TEST_OPENCODE). The relay binary is
$RELAY_TEST_RELAY_BIN, else target/release/relay. Each test starts its own hub (`relay hub
--data-dir <root>/data --idle-exit 0 --ws-port 0`) and a fake chat-completions API
(fake_openai_chat.py) that OpenCode reaches through a provider with `"npm":
"@ai-sdk/openai-compatible"`; OpenCode runs with private HOME/XDG dirs, `RELAY_HOME=<root>/data`
and `RELAY_PEER_ID=bob` (so the `relay mcp` and `relay deliver` it starts use the test's hub),
and its config is written by `relay install opencode` on top of the provider settings.
Artifacts stay in $RELAY_TEST_REAL_WORK (default /tmp/relay-real-opencode)/<test>/:
`api-requests.jsonl` (what the model was sent), `plugin.log` (the plugin's log),
`data/logs/{hub,mcp}.log`, `tui-launch.sh`, `oc/data/opencode/log/` (OpenCode's own logs).

Tests:
  tui_idle_wake   The TUI as bob; a first turn calls relay_relay_peers (my_delivery is
                  opencode-plugin) and ends; idle. `relay send bob WAKE-… --as alice` starts a
                  new request whose last (user) message is the wrapped text; the model's scripted
                  answer, a relay_relay_inbox call, goes through (the pushed message is not
                  offered again as new); the message is in the conversation exactly once. Then
                  20 more messages, one at a time: send -> the text in the model's next request,
                  p50/min/max printed.
  tui_busy        The TUI busy in a 6 s bash call; `relay send` 1.5 s into it; the text is in
                  the very next request, after the tool result, as a user message (it joined
                  the running loop); exactly once.
Prints PASS/FAIL per test with timings and a closing "N passed, N failed" line; exits 1 on any
failure.

Facts found with OpenCode 1.18.33 (native opencode-linux-x64, Bun 1.3.14, 2026-12):
- Plugins: every `*.js` in `$XDG_CONFIG_HOME/opencode/plugins/` is loaded (listed in the
  resolved config as `plugin: ["file:///…/plugins/relay.js"]`); its exported function (one
  named export was tried) is called once with `{client, project, worktree, directory, experimental_workspace, serverUrl,
  $}` and returns the hooks. In the TUI it runs in the worker thread
  (`/$bunfs/root/src/cli/tui/worker.js`) of the one opencode process; `serverUrl` is
  `http://localhost:4096/` while nothing listens there (the client is served in process).
  **Awaiting a client call inside the plugin function deadlocks OpenCode** (`opencode run` hung
  until killed): start work, do not await it.
- `client` is the v1 SDK: `client.session.promptAsync({path: {id}, body: {parts: [{type:
  "text", text}]}})` posts `/session/{id}/prompt_async` and resolves `{data, request,
  response}` with status 204; it never throws for HTTP errors: an unknown id gives status 404
  and `error: {name: "NotFoundError", data: {message: "Session not found: …"}}`.
  `session.status()` → `{data: {<id>: {type: "busy"}}}` (idle sessions absent),
  `session.list()` → `{data: [{id, parentID?, time: {created, updated}, …}]}`.
- Idle session: promptAsync starts a turn at once (request about 40 ms later), shown in the TUI
  as a user message. Busy (a tool running): accepted (204) and the text is a `user` message
  right after the `tool` result in the loop's next request.
- Hooks seen: `config`, `event` (`session.created/updated/status/idle/diff`,
  `message.updated`, `message.part.updated/delta`, …; `properties.sessionID` on session and
  message events), `chat.message` ({sessionID}), `chat.params`, `chat.headers`,
  `experimental.chat.system.transform`, `tool.execute.before` ({tool, sessionID, callID},
  {args}) and `tool.execute.after`. MCP tools are named `<server>_<tool>`: `relay_relay_send`.
- Processes: the MCP server and a child the plugin spawns (`node:child_process` works under
  Bun) are both direct children of the opencode process (TUI: `opencode` ← tmux; `run`:
  `opencode` ← the shell), so `relay deliver` and `relay mcp` share their parent.
  MCP servers get `OPENCODE=1`, `AGENT=1`, `OPENCODE_PID=<opencode pid>` and the rest of
  OpenCode's environment; cwd is the project. MCP handshake: `initialize` protocol
  `2025-11-25`, clientInfo `opencode 1.18.33`, capabilities `{roots: {}}`.
  SIGTERM to the opencode process alone took its MCP server down too; stopping the tmux pane's
  process group leaves no `relay mcp` or `relay deliver` behind.
- The provider: `@ai-sdk/openai-compatible` (bundled; no download) posts
  `/v1/chat/completions` with `stream: true`, user-agent `opencode/1.18.33
  ai-sdk/provider-utils/4.0.23 runtime/bun/1.3.14`, `x-session-affinity: <session id>`; the
  title request has no `tools`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
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
from fake_openai_chat import message_text  # noqa: E402
from relay_claude import Hub, fresh, note, relay_binary  # noqa: E402

import relay_claude  # noqa: E402

WORK = Path(os.environ.get("RELAY_TEST_REAL_WORK")
            or Path(tempfile.gettempdir()) / "relay-real-opencode")
relay_claude.WORK = WORK  # fresh() makes the test's directory under WORK
OPENCODE_VERSION = "1.18.33"
READY_SCREEN = "Ask anything"
LATENCY_MESSAGES = 20


def opencode_binary() -> str:
    explicit = os.environ.get("RELAY_TEST_OPENCODE")
    if explicit:
        return explicit
    path = REPO / "target" / "real-clients" / "opencode" / "node_modules" / "opencode-linux-x64" / "bin" / "opencode"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run tests/real/install-opencode.sh first")
    return str(path)


class FakeChat:
    """tests/real/fake_openai_chat.py as a child process in its own process group."""

    def __init__(self, workdir: Path, script: dict, name: str = "api"):
        self.dir = workdir
        self.log_path = workdir / f"{name}-requests.jsonl"
        script_path = workdir / f"{name}-script.json"
        port_file = workdir / f"{name}.port"
        for path in (self.log_path, port_file):
            path.unlink(missing_ok=True)
        script_path.write_text(json.dumps(script, indent=2))
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_openai_chat.py"), "--script", str(script_path),
             "--log", str(self.log_path), "--port-file", str(port_file)],
            stdout=open(workdir / f"{name}.out", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_until(lambda: port_file.exists() or self.proc.poll() is not None, 10,
                   what="the fake API port file")
        if self.proc.poll() is not None:
            raise RuntimeError(f"fake API exited: {(workdir / f'{name}.out').read_text()}")
        self.url = f"http://127.0.0.1:{int(port_file.read_text())}/v1"

    def requests(self, kind: str = "main") -> list[dict]:
        if not self.log_path.exists():
            return []
        out = []
        # Only whole lines: the fake API may be writing the last one right now.
        with open(self.log_path, encoding="utf-8") as log:
            for line in log:
                if not line.endswith("\n") or not line.strip():
                    continue
                entry = json.loads(line)
                if entry["path"].endswith("/chat/completions") and kind in ("any", entry.get("kind")):
                    out.append(entry)
        return out

    def last_n(self) -> int:
        return max((e["n"] for e in self.requests("any")), default=0)

    def find(self, substring: str | None = None, after: int = 0, predicate=None) -> dict | None:
        for entry in self.requests():
            if entry["n"] <= after:
                continue
            if substring is not None and substring not in entry.get("last_text", ""):
                continue
            if predicate is not None and not predicate(entry):
                continue
            return entry
        return None

    def wait_for(self, substring: str | None = None, timeout: float = 60, **kwargs) -> dict:
        return wait_until(lambda: self.find(substring, **kwargs), timeout, interval=0.01,
                          what=f"a request with {substring!r} in its new text")

    def stop(self) -> None:
        stop_group(self.proc.pid)
        self.proc.wait(5)


class OpenCode:
    """Private HOME/XDG dirs, a project dir, the config (provider + `relay install opencode`),
    and the TUI in a private tmux server."""

    def __init__(self, root: Path, api: FakeChat, hub: Hub, name: str = "bob"):
        self.root = root
        self.oc = root / "oc"
        self.project = root / name
        self.home = self.oc / "home"
        dirs = {"XDG_CONFIG_HOME": self.oc / "config", "XDG_DATA_HOME": self.oc / "data",
                "XDG_STATE_HOME": self.oc / "state", "XDG_CACHE_HOME": self.oc / "cache",
                "TMPDIR": self.oc / "tmp"}
        for path in [self.home, self.project, *dirs.values()]:
            path.mkdir(parents=True, exist_ok=True)
        self.plugin_log = root / "plugin.log"
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("OPENCODE", "RELAY_", "CLAUDE", "ANTHROPIC", "OPENAI"))
               and key not in ("AGENT", "TMUX", "TMUX_PANE")}
        env.update({key: str(value) for key, value in dirs.items()})
        env.update({
            "HOME": str(self.home), "PWD": str(self.project),
            "OPENCODE_DISABLE_AUTOUPDATE": "1", "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_SHARE": "1", "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
            "RELAY_HOME": str(hub.data), "RELAY_PEER_ID": name,
            "RELAY_PLUGIN_LOG": str(self.plugin_log),
            "RELAY_LOG": os.environ.get("RELAY_LOG", "relay=debug"),
            "TERM": env.get("TERM") or "xterm-256color",
        })
        self.env = env
        config_dir = dirs["XDG_CONFIG_HOME"] / "opencode"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "opencode.json").write_text(json.dumps({
            "$schema": "https://opencode.ai/config.json",
            "provider": {"fake": {
                "npm": "@ai-sdk/openai-compatible", "name": "Fake",
                "options": {"baseURL": api.url, "apiKey": "sk-fake-relay-test"},
                "models": {"fake-model": {"name": "Fake Model", "tool_call": True}}}},
            "model": "fake/fake-model", "small_model": "fake/fake-model",
            "autoupdate": False, "share": "disabled",
        }, indent=2))
        installed = subprocess.run([hub.binary, "install", "opencode"], env=env, cwd=self.project,
                                   capture_output=True, text=True, timeout=60)
        assert installed.returncode == 0, f"relay install opencode: {installed.stdout}{installed.stderr}"
        config = json.loads((config_dir / "opencode.json").read_text())
        assert config["mcp"]["relay"]["command"][1:4] == ["mcp", "--client", "opencode"], config
        assert config["provider"]["fake"]["options"]["baseURL"] == api.url, "install kept the provider"
        plugin = (config_dir / "plugins" / "relay.js").read_text()
        command = re.search(r"^const RELAY_DELIVER = (\[.*\]);$", plugin, re.M)
        assert command and "__RELAY_DELIVER_COMMAND__" not in plugin, "the command is filled in"
        assert json.loads(command.group(1))[1:4] == ["deliver", "--client", "opencode"], command.group(1)
        asset = (REPO / "assets" / "opencode" / "relay.js").read_text()
        assert plugin.replace(command.group(1), "__RELAY_DELIVER_COMMAND__", 1) == asset, \
            "the installed plugin is not assets/opencode/relay.js: rebuild relay (it embeds the asset)"
        self.socket = root / "tui.tmux"
        launcher = root / "tui-launch.sh"
        exports = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items())
        launcher.write_text("#!/bin/sh\n" + exports + f"cd {shlex.quote(str(self.project))}\n"
                            + f"exec {shlex.quote(opencode_binary())}\n")
        launcher.chmod(0o755)
        self.tmux("new-session", "-d", "-s", "tui", "-x", "160", "-y", "50",
                  f"env -i sh {shlex.quote(str(launcher))}")
        self.tmux("set-option", "-t", "tui", "remain-on-exit", "on")
        self.pane_pid = int(self.tmux("display-message", "-p", "-t", "tui", "#{pane_pid}").strip())

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), *args], check=True,
                              capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "tui")

    def wait_screen(self, text: str, timeout: float = 30) -> str:
        return wait_until(lambda: (lambda s: s if text in s else None)(self.screen()), timeout,
                          what=f"{text!r} on the TUI screen")

    def type_line(self, text: str) -> None:
        self.tmux("send-keys", "-t", "tui", "-l", text)
        time.sleep(0.5)
        self.tmux("send-keys", "-t", "tui", "Enter")

    def stop(self) -> None:
        """SIGTERM the pane's process group (OpenCode, its relay mcp and relay deliver go with
        it), then the private tmux server."""
        try:
            stop_group(os.getpgid(self.pane_pid))
        except ProcessLookupError:
            pass
        try:
            server = int(self.tmux("display-message", "-p", "#{pid}").strip())
            os.kill(server, signal.SIGTERM)
        except (subprocess.CalledProcessError, ValueError, ProcessLookupError):
            pass


def wrapped(sender: str, msg_id: str, text: str) -> str:
    return (r'<peer-message from="' + re.escape(sender) + r'"[^>]*\bmsg_id="' + re.escape(msg_id)
            + r'"[^>]*>' + re.escape(text) + r"</peer-message>")


def tool_result_json(entry: dict) -> dict:
    """The JSON of the last `tool` message of a request (OpenCode sends MCP results as text)."""
    for message in reversed(entry["body"]["messages"]):
        if message.get("role") == "tool":
            return json.loads(message_text(message))
    raise AssertionError(f"no tool message in request {entry['n']}")


def assert_once(api: FakeChat, needle: str, what: str) -> None:
    """needle is in no request's conversation more than once, and arrived as new text once."""
    for entry in api.requests():
        count = sum(message_text(m).count(needle) for m in entry["body"].get("messages", []))
        assert count <= 1, f"{what}: {needle!r} {count} times in request {entry['n']}"
    arrived = [e["n"] for e in api.requests() if needle in e.get("last_text", "")]
    assert len(arrived) == 1, f"{what}: {needle!r} arrived as new text in requests {arrived}"


def start(name: str, rules: list[dict]) -> tuple[Path, Hub, FakeChat, OpenCode]:
    root = fresh(name)
    hub = Hub(root)
    api = None
    try:
        api = FakeChat(root, {"rules": rules})
        return root, hub, api, OpenCode(root, api, hub)
    except BaseException:
        if api is not None:
            api.stop()
        hub.stop()
        raise


def first_turn(oc: OpenCode, api: FakeChat, hub: Hub) -> None:
    """FIRST-TURN: the model calls relay_relay_peers (so the plugin knows the session), then
    answers "first turn done"; waits until that is on the screen."""
    started = time.time()
    oc.wait_screen(READY_SCREEN, 60)
    hub.wait_online("bob", timeout=60)
    note(oc.root.name, "TUI ready and bob online", time.time() - started)
    oc.type_line("FIRST-TURN")
    done = api.wait_for(timeout=60, predicate=lambda e: e["rule"] == "first-done")
    peers = tool_result_json(done)
    assert peers.get("my_delivery") == "opencode-plugin", f"relay_peers said {peers}"
    oc.wait_screen("first turn done", 30)
    time.sleep(1)  # the loop has ended: idle


FIRST_RULES = [
    {"id": "first", "when": {"last_contains": "FIRST-TURN", "tool_offered": "relay_relay_peers"},
     "reply": {"tool_call": {"name": "relay_relay_peers", "arguments": {}}}},
    {"id": "no-tools", "when": {"last_contains": "FIRST-TURN"}, "reply": {"text": "NO-RELAY-TOOLS"}},
    {"id": "first-done", "when": {"after": ["first"], "not_after": ["first-done"]},
     "reply": {"text": "first turn done"}},
]


def test_tui_idle_wake() -> None:
    name = "tui_idle_wake"
    root, hub, api, oc = start(name, FIRST_RULES + [
        {"id": "wake", "when": {"last_contains": "WAKE-456", "tool_offered": "relay_relay_inbox"},
         "reply": {"tool_call": {"name": "relay_relay_inbox", "arguments": {}}}},
        {"id": "woke", "when": {"after": ["wake"], "not_after": ["woke"]},
         "reply": {"text": "WOKE-BY-RELAY"}},
        {"id": "lat", "when": {"last_regex": r"LAT-\d+"}, "times": None,
         "reply": {"text": "lat seen"}},
    ])
    try:
        first_turn(oc, api, hub)
        before = api.last_n()
        sent_at = time.time()
        msg_id, status, out = hub.send("bob", "WAKE-456")
        note(name, f"relay send answered ({status})", time.time() - sent_at)
        woke = api.wait_for("WAKE-456", timeout=30, after=before)
        note(name, "send -> wake request", woke["t"] - sent_at)
        last = woke["body"]["messages"][-1]
        assert last["role"] == "user", last
        assert re.search(wrapped("alice", msg_id, "WAKE-456"), message_text(last)), message_text(last)
        assert woke["rule"] == "wake", f"answered by {woke['rule']}: relay tools offered?"
        after_inbox = api.wait_for(timeout=30, predicate=lambda e: e["rule"] == "woke")
        inbox = tool_result_json(after_inbox)
        again = [m for m in inbox.get("messages", []) if m.get("msg_id") == msg_id and not m.get("pushed")]
        assert not again, f"relay_inbox offered the pushed message as new: {inbox}"
        oc.wait_screen("WOKE-BY-RELAY", 30)
        time.sleep(3)  # a duplicate would show up by now
        assert_once(api, f'msg_id="{msg_id}"', "bob")
        log = oc.plugin_log.read_text()
        assert log.count(f"prompted {msg_id} ") == 1, log

        latencies = []
        for i in range(LATENCY_MESSAGES):
            time.sleep(0.5)  # the previous turn has ended: idle
            before = api.last_n()
            text = f"LAT-{i:02d}"
            sent_at = time.time()
            hub.send("bob", text)
            seen = api.wait_for(text, timeout=30, after=before)
            latencies.append(seen["t"] - sent_at)
        p50 = statistics.median(latencies)
        note(name, f"send -> next request p50 over {len(latencies)}", p50)
        print(f"  {name}: latency min {min(latencies) * 1000:.0f} ms, p50 {p50 * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms", flush=True)
        for i in range(LATENCY_MESSAGES):
            assert_once(api, f"LAT-{i:02d}<", f"bob (LAT-{i:02d})")
    finally:
        oc.stop()
        api.stop()
        hub.stop()


def test_tui_busy() -> None:
    name = "tui_busy"
    root, hub, api, oc = start(name, FIRST_RULES + [
        {"id": "saw", "when": {"last_contains": "PING-123"}, "reply": {"text": "SAW-PING"}},
        {"id": "sleep", "when": {"last_contains": "GO-BUSY"},
         "reply": {"tool_call": {"name": "bash", "arguments": {
             "command": "sleep 6; echo slept", "description": "wait a while"}}}},
    ])
    try:
        first_turn(oc, api, hub)
        oc.type_line("GO-BUSY")
        busy = api.wait_for(timeout=30, predicate=lambda e: e["rule"] == "sleep")
        time.sleep(1.5)  # inside the 6 s bash call
        before = api.last_n()
        sent_at = time.time()
        msg_id, status, out = hub.send("bob", "PING-123")
        note(name, f"relay send answered ({status})", time.time() - sent_at)
        nxt = api.wait_for(timeout=30, after=max(before, busy["n"]))
        note(name, "send -> next request", nxt["t"] - sent_at)
        assert nxt["t"] - busy["t"] >= 5, "the next request came before the bash call ended"
        assert "PING-123" in nxt["last_text"], f"next request {nxt['n']} lacks it: {nxt['last_text'][:500]!r}"
        roles = [m["role"] for m in nxt["body"]["messages"]]
        assert roles[-2:] == ["tool", "user"], f"not after the tool result: {roles[-4:]}"
        assert "slept" in message_text(nxt["body"]["messages"][-2])
        assert re.search(wrapped("alice", msg_id, "PING-123"), message_text(nxt["body"]["messages"][-1]))
        oc.wait_screen("SAW-PING", 30)
        time.sleep(3)
        assert_once(api, f'msg_id="{msg_id}"', "bob")
    finally:
        oc.stop()
        api.stop()
        hub.stop()


TESTS = {"tui_idle_wake": test_tui_idle_wake, "tui_busy": test_tui_busy}


def main() -> int:
    names = sys.argv[1:] or list(TESTS)
    unknown = [n for n in names if n not in TESTS]
    if unknown:
        print(f"unknown test(s): {', '.join(unknown)}; known: {', '.join(TESTS)}")
        return 2
    if os.environ.get("RELAY_TEST_REAL_CLIENTS") != "1":
        print("RELAY_TEST_REAL_CLIENTS is not 1: real-client tests skipped "
              "(needs tests/real/install-opencode.sh, a built relay and tmux)")
        print(f"0 passed, 0 failed, {len(names)} skipped")
        return 0
    print(f"relay: {relay_binary()}\nopencode: {opencode_binary()}\nartifacts: {WORK}", flush=True)
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
