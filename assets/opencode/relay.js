// Relay's OpenCode plugin: hands the messages other sessions send through Relay to this
// OpenCode's model. `relay install opencode` copies it into <config>/opencode/plugins/relay.js
// with the command below filled in. It spawns `relay deliver --client opencode`, which finds
// this process's `relay mcp` and streams its messages as JSON lines; each one is prompted into
// the session with `client.session.promptAsync` (idle: starts a turn; busy: joins the next loop
// step) and acked `read`, or `refused` when OpenCode did not take it. The line protocol is the
// contract in docs/delivery.md ("The session's delivery socket", "relay deliver"). Plain ESM,
// no dependencies; it never writes to OpenCode's stdout/stderr (log: $RELAY_PLUGIN_LOG, else
// <tmp>/relay-opencode-plugin.log) and never throws out of a hook.
import { spawn } from "node:child_process";
import { appendFileSync, renameSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const RELAY_DELIVER = __RELAY_DELIVER_COMMAND__;
const RESTART_FIRST_MS = 500;
const RESTART_MAX_MS = 30_000;
const PROMPT_TIMEOUT_MS = 30_000;
// A refused message is offered again at once: hold each refusal back a little longer, so a
// session that cannot be prompted is not hammered (reset by a prompt that works).
const REFUSE_FIRST_MS = 250;
const REFUSE_MAX_MS = 30_000;
const LOG_MAX_BYTES = 1 << 20;
const REMEMBERED_MAX = 1000; // msg_ids already prompted (an ack lost with a bridge is not re-prompted)
const LOG_PATH = process.env.RELAY_PLUGIN_LOG || join(tmpdir(), "relay-opencode-plugin.log");

function log(text) {
  try {
    if (statSync(LOG_PATH, { throwIfNoEntry: false })?.size > LOG_MAX_BYTES) {
      renameSync(LOG_PATH, `${LOG_PATH}.1`);
    }
    appendFileSync(LOG_PATH, `${new Date().toISOString()} [${process.pid}] ${text}\n`);
  } catch {
    // Logging must never break OpenCode.
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const RelayPlugin = async ({ client }) => {
  // Which session gets a message: the one that last called a relay tool, else the one last
  // active in events, else the newest top-level session OpenCode lists.
  let relaySession = null;
  let activeSession = null;
  const subSessions = new Set(); // sessions with a parent (subagents): never the target
  let child = null;
  let restartDelay = RESTART_FIRST_MS;
  let refuseDelay = REFUSE_FIRST_MS;
  let queue = Promise.resolve(); // messages are prompted one at a time, in order
  const prompted = new Set();

  async function targetSession() {
    if (relaySession) return relaySession;
    if (activeSession) return activeSession;
    const listed = await withTimeout(client.session.list(), PROMPT_TIMEOUT_MS, "session.list");
    const sessions = (listed?.data ?? []).filter((session) => session && !session.parentID);
    sessions.sort((a, b) => (b.time?.updated ?? 0) - (a.time?.updated ?? 0));
    return sessions[0]?.id ?? null;
  }

  async function deliver(message, from) {
    const ack = { type: "ack", msg_id: message.msg_id, step: "read" };
    if (prompted.has(message.msg_id)) {
      log(`${message.msg_id} was prompted already: acked again, not prompted twice`);
      if (from === child) write(from, ack);
      return;
    }
    try {
      const id = await targetSession();
      if (!id) throw new Error("no OpenCode session to prompt yet");
      const result = await withTimeout(
        client.session.promptAsync({
          path: { id },
          body: { parts: [{ type: "text", text: String(message.text ?? "") }] },
        }),
        PROMPT_TIMEOUT_MS,
        "session.promptAsync",
      );
      const status = result?.response?.status;
      if (result?.error || (status !== undefined && status >= 300)) {
        const error = result?.error;
        const detail = error?.data?.message ?? error?.message ?? JSON.stringify(error ?? null);
        throw new Error(`HTTP ${status ?? "?"}: ${detail}`);
      }
      prompted.add(message.msg_id);
      if (prompted.size > REMEMBERED_MAX) prompted.delete(prompted.values().next().value);
      refuseDelay = REFUSE_FIRST_MS;
      log(`prompted ${message.msg_id} into ${id}`);
    } catch (error) {
      ack.step = "refused";
      ack.detail = `session.promptAsync failed: ${error?.message ?? error}`;
      const delay = refuseDelay;
      refuseDelay = Math.min(refuseDelay * 2, REFUSE_MAX_MS);
      log(`refused ${message.msg_id} (acked in ${delay} ms): ${ack.detail}`);
      setTimeout(() => from === child && write(from, ack), delay).unref?.();
      return;
    }
    // The ack goes to the bridge that handed the message over; a new one offers it again.
    if (from === child) write(from, ack);
  }

  function write(target, line) {
    try {
      if (target?.stdin?.writable) target.stdin.write(`${JSON.stringify(line)}\n`);
    } catch (error) {
      log(`could not write to relay deliver: ${error?.message ?? error}`);
    }
  }

  function onLine(from, text) {
    if (!text.trim()) return;
    let line;
    try {
      line = JSON.parse(text);
    } catch {
      log(`relay deliver printed a line that is not JSON: ${text.slice(0, 200)}`);
      return;
    }
    if (line?.type === "message" && typeof line.msg_id === "string") {
      queue = queue.then(() => deliver(line, from));
    } else if (line?.type === "welcome") {
      restartDelay = RESTART_FIRST_MS;
      log(`connected to session ${line.name} (${line.delivery})`);
    } else if (line?.type === "waiting") {
      log(`relay deliver is waiting: ${line.reason}`);
    } else {
      log(`relay deliver: ${text.slice(0, 500)}`);
    }
  }

  function start() {
    let proc;
    try {
      proc = spawn(RELAY_DELIVER[0], RELAY_DELIVER.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
    } catch (error) {
      log(`could not start ${RELAY_DELIVER.join(" ")}: ${error?.message ?? error}`);
      restart(null);
      return;
    }
    child = proc;
    log(`started ${RELAY_DELIVER.join(" ")} (pid ${proc.pid})`);
    let buffer = "";
    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", (chunk) => {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const text = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        onLine(proc, text);
      }
    });
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (chunk) => log(`relay deliver stderr: ${chunk.trimEnd()}`));
    proc.stdin.on("error", (error) => log(`relay deliver stdin: ${error?.message ?? error}`));
    let ended = false;
    const end = (why) => {
      if (ended) return;
      ended = true;
      log(`relay deliver ended: ${why}`);
      restart(proc);
    };
    proc.on("error", (error) => end(error?.message ?? String(error)));
    proc.on("exit", (code, signal) => end(signal ? `signal ${signal}` : `exit ${code}`));
  }

  function restart(proc) {
    if (proc !== null && proc !== child) return;
    child = null;
    const delay = restartDelay;
    restartDelay = Math.min(restartDelay * 2, RESTART_MAX_MS);
    log(`restarting relay deliver in ${delay} ms`);
    setTimeout(start, delay).unref?.();
  }

  // No awaiting OpenCode's client here: OpenCode 1.18 waits for this function before it
  // serves the client's requests.
  start();
  try {
    process.once("exit", () => child?.kill());
  } catch {
    // not fatal: relay deliver also exits when its stdin closes
  }

  return {
    event: async (input) => {
      try {
        const event = input?.event;
        const props = event?.properties ?? {};
        const info = props.info ?? {};
        if (event?.type?.startsWith("session.") && info.id && info.parentID) {
          subSessions.add(info.id);
        }
        if (event?.type === "session.deleted") {
          const gone = info.id ?? props.sessionID;
          if (relaySession === gone) relaySession = null;
          if (activeSession === gone) activeSession = null;
          return;
        }
        const id = props.sessionID ?? info.sessionID;
        if (typeof id === "string" && !subSessions.has(id)) activeSession = id;
      } catch (error) {
        log(`event hook: ${error?.message ?? error}`);
      }
    },
    "tool.execute.before": async (input) => {
      try {
        const id = input?.sessionID;
        if (typeof input?.tool === "string" && input.tool.startsWith("relay_") && id) {
          if (!subSessions.has(id)) relaySession = id;
        }
      } catch (error) {
        log(`tool.execute.before hook: ${error?.message ?? error}`);
      }
    },
  };
};
