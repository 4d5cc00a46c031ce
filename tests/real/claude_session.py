"""Helpers for driving a real Claude Code offline against tests/real/fake_anthropic.py.

Standard library only (plus `tmux` on PATH for the TUI). Everything listens on 127.0.0.1 only;
everything started here runs in its own process group and is stopped by that group's id.

    from claude_session import Scratch, FakeApi, start_headless, TmuxClaude, stop_group

    scratch = Scratch("/tmp/run1")                       # private HOME, config, tmp, project
    api = FakeApi(scratch.root, {"rules": [...]})         # scripted fake Messages API
    mcp = scratch.mcp_config({"relay": {"command": "/path/relay", "args": ["mcp"],
                                        "env": {"RELAY_DATA_DIR": "..."}}})
    proc = start_headless(scratch, api, "prompt", mcp_config=mcp)   # claude -p
    entry = api.wait_for("HELLO-FROM-PEER", timeout=60)   # a logged request containing it
    proc.wait(120)
    tui = TmuxClaude(scratch, api, mcp_config=mcp)        # interactive, under a private tmux
    tui.wait_screen("for shortcuts"); tui.send_keys("hello", "Enter")
    tui.stop(); api.stop()

The Claude Code binary is $RELAY_TEST_CLAUDE, else the one tests/real/install-claude.sh puts in
target/real-clients/claude (see claude_binary()).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CLAUDE_VERSION = "2.1.332"
API_KEY = "sk-ant-api03-relay-real-client-test-key-0123456789abcdefghij"
INSTALL_DIR = REPO / "target" / "real-clients" / "claude"
PACKAGE = "@anthropic-ai/claude-code-linux-x64"


def claude_binary() -> str:
    """The claude executable: $RELAY_TEST_CLAUDE or the pinned native package's binary."""
    explicit = os.environ.get("RELAY_TEST_CLAUDE")
    if explicit:
        return explicit
    path = INSTALL_DIR / "node_modules" / PACKAGE / "claude"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run tests/real/install-claude.sh first")
    return str(path)


def stop_group(pid: int, grace: float = 3.0) -> None:
    """SIGTERM the process group led by pid, then SIGKILL it after `grace` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + grace
    while time.time() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Polls predicate() until it returns something truthy; raises TimeoutError after timeout."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Scratch:
    """A private HOME, CLAUDE_CONFIG_DIR, CLAUDE_CODE_TMPDIR and project directory."""

    def __init__(self, root: str | Path, api_key: str = API_KEY):
        self.root = Path(root)
        self.home = self.root / "home"
        self.config = self.root / "config"
        self.tmp = self.root / "tmp"
        self.project = self.root / "project"
        self.api_key = api_key
        for path in (self.home, self.config, self.tmp, self.project):
            path.mkdir(parents=True, exist_ok=True)
        self.seed_config()

    def seed_config(self, extra: dict | None = None) -> None:
        """Writes $CLAUDE_CONFIG_DIR/.claude.json so the TUI starts without any dialog, and
        settings.json with skipDangerousModePermissionPrompt (the bypass-mode warning)."""
        path = self.config / ".claude.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.update({
            "hasCompletedOnboarding": True,
            "lastOnboardingVersion": CLAUDE_VERSION,
            "numStartups": 1,
            "customApiKeyResponses": {"approved": [self.api_key[-20:]], "rejected": []},
        })
        projects = data.setdefault("projects", {})
        projects.setdefault(str(self.project), {}).update(
            {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True,
             "allowedTools": []})
        if extra:
            data.update(extra)
        path.write_text(json.dumps(data, indent=2))
        self.write_settings({"skipDangerousModePermissionPrompt": True})

    def write_settings(self, values: dict) -> None:
        """Merges values into $CLAUDE_CONFIG_DIR/settings.json (user settings)."""
        path = self.config / "settings.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.update(values)
        path.write_text(json.dumps(data, indent=2))

    def mcp_config(self, servers: dict, name: str = "mcp.json") -> Path:
        """Writes a --mcp-config file: servers maps a name to {command, args, env}."""
        path = self.root / name
        path.write_text(json.dumps({"mcpServers": servers}, indent=2))
        return path

    def env(self, api: "FakeApi", extra: dict | None = None) -> dict:
        """The environment for claude: inherited minus CLAUDE*/ANTHROPIC* variables, plus ours."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("CLAUDE", "ANTHROPIC", "OTEL_", "MCP_"))
               and key not in ("AI_AGENT", "TMUX", "TMUX_PANE")}
        env.update({
            "HOME": str(self.home),
            "PWD": str(self.project),
            "CLAUDE_CONFIG_DIR": str(self.config),
            "CLAUDE_CODE_TMPDIR": str(self.tmp),
            "TMPDIR": str(self.tmp),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "ANTHROPIC_API_KEY": self.api_key,
            "ANTHROPIC_BASE_URL": api.url,
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "IS_SANDBOX": "1",
            "TERM": env.get("TERM") or "xterm-256color",
        })
        env.update(extra or {})
        return env

    def sessions(self) -> list[dict]:
        """The session registry files Claude Code writes ($CLAUDE_CONFIG_DIR/sessions/*.json)."""
        out = []
        for path in sorted((self.config / "sessions").glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                pass
        return out


class FakeApi:
    """tests/real/fake_anthropic.py run as a child process in its own process group."""

    def __init__(self, workdir: str | Path, script: dict, name: str = "api"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.script_path = self.dir / f"{name}-script.json"
        self.log_path = self.dir / f"{name}-requests.jsonl"
        port_file = self.dir / f"{name}.port"
        for path in (self.log_path, port_file):
            path.unlink(missing_ok=True)
        self.script_path.write_text(json.dumps(script, indent=2))
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_anthropic.py"), "--script", str(self.script_path),
             "--log", str(self.log_path), "--port-file", str(port_file)],
            stdout=open(self.dir / f"{name}.out", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_until(lambda: port_file.exists() or self.proc.poll() is not None, 10,
                   what="the fake API port file")
        if self.proc.poll() is not None:
            raise RuntimeError(f"fake API exited: {(self.dir / f'{name}.out').read_text()}")
        self.port = int(port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"

    def entries(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        out = []
        with open(self.log_path, encoding="utf-8") as log:
            for line in log:
                if line.endswith("\n"):
                    out.append(json.loads(line))
        return out

    def requests(self, kind: str = "main") -> list[dict]:
        """Logged /v1/messages requests of that kind ("main", "side" or "any")."""
        return [e for e in self.entries() if e["path"] == "/v1/messages"
                and (kind == "any" or e.get("kind") == kind)]

    def find(self, substring: str | None = None, kind: str = "main", after: int = 0,
             predicate=None, where: str = "body") -> dict | None:
        """The first logged request numbered > after that contains substring (in its whole
        body, or with where="last" in its last message) and satisfies predicate."""
        for entry in self.requests(kind):
            if entry["n"] <= after:
                continue
            haystack = entry.get("last_text", "") if where == "last" else json.dumps(entry["body"])
            if substring is not None and substring not in haystack:
                continue
            if predicate is not None and not predicate(entry):
                continue
            return entry
        return None

    def wait_for(self, substring: str | None = None, timeout: float = 60, **kwargs) -> dict:
        return wait_until(lambda: self.find(substring, **kwargs), timeout,
                          what=f"a request containing {substring!r}")

    def add_rules(self, rules: list[dict]) -> None:
        import urllib.request
        request = urllib.request.Request(f"{self.url}/_fake/rules", data=json.dumps(rules).encode(),
                                         headers={"content-type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()

    def stop(self) -> None:
        stop_group(self.proc.pid)
        self.proc.wait(5)


def claude_args(mcp_config: Path | None, strict: bool = True, extra: list[str] | None = None):
    args = ["--dangerously-skip-permissions"]
    if mcp_config is not None:
        args += ["--mcp-config", str(mcp_config)]
        if strict:
            args.append("--strict-mcp-config")
    return args + list(extra or [])


def start_headless(scratch: Scratch, api: FakeApi, prompt: str, mcp_config: Path | None = None,
                   extra_args: list[str] | None = None, env: dict | None = None,
                   name: str = "headless") -> subprocess.Popen:
    """Starts `claude -p <prompt>` in the project dir, in its own process group; stdout/stderr
    go to <root>/<name>.out / .err. The caller waits or calls stop_group(proc.pid)."""
    command = [claude_binary(), "-p", prompt] + claude_args(mcp_config, extra=extra_args)
    return subprocess.Popen(command, cwd=scratch.project, env=scratch.env(api, env),
                            stdin=subprocess.DEVNULL,
                            stdout=open(scratch.root / f"{name}.out", "w"),
                            stderr=open(scratch.root / f"{name}.err", "w"),
                            start_new_session=True)


class TmuxClaude:
    """The interactive TUI in a private tmux server (its own socket under the scratch root)."""

    def __init__(self, scratch: Scratch, api: FakeApi, mcp_config: Path | None = None,
                 extra_args: list[str] | None = None, env: dict | None = None,
                 name: str = "tui", width: int = 160, height: int = 50):
        self.scratch = scratch
        self.socket = scratch.root / f"{name}.tmux"
        self.name = name
        environment = scratch.env(api, env)
        command = [claude_binary()] + claude_args(mcp_config, extra=extra_args)
        launcher = scratch.root / f"{name}-launch.sh"
        exports = "".join(f"export {key}={shlex.quote(value)}\n"
                          for key, value in environment.items())
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

    def send_keys(self, *keys: str, literal: bool = False) -> None:
        """tmux send-keys; literal=True sends the text as typed (no key names)."""
        self.tmux("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)

    def type_line(self, text: str, settle: float = 0.5) -> None:
        """Types text, waits a moment (the TUI debounces pastes), then presses Enter."""
        self.send_keys(text, literal=True)
        time.sleep(settle)
        self.send_keys("Enter")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def wait_screen(self, text: str, timeout: float = 30) -> str:
        return wait_until(lambda: (lambda s: s if text in s else None)(self.screen()), timeout,
                          what=f"{text!r} on the TUI screen")

    def claude_pid(self, timeout: float = 10) -> int:
        """The claude process itself: the pane's process or the first descendant running the
        claude binary (the pane's shell usually execs it, so normally the pane pid)."""
        binary = os.path.realpath(claude_binary())

        def find():
            todo = [self.pane_pid]
            while todo:
                pid = todo.pop(0)
                try:
                    if os.path.realpath(f"/proc/{pid}/exe") == binary:
                        return pid
                    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                except OSError:
                    continue
                todo.extend(int(child) for child in children)
            return None
        return wait_until(find, timeout, what="the claude process in the tmux pane")

    def stop(self) -> None:
        """Kills claude (its process group: the pane) and then this private tmux server."""
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


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def tool_search(name: str) -> dict:
    """A reply that loads a deferred tool (MCP tools are deferred behind ToolSearch)."""
    return {"tool_use": {"name": "ToolSearch", "input": {"query": f"select:{name}",
                                                         "max_results": 5}}}


def tool_use(name: str, tool_input: dict) -> dict:
    return {"tool_use": {"name": name, "input": tool_input}}
