// Relay's extension for the GitHub Copilot CLI: hands the messages other sessions send to this
// session's model.
//
// `relay install copilot` writes this file to $COPILOT_HOME/extensions/relay/extension.mjs and
// replaces the one placeholder below with the command to run (`relay deliver --client copilot`).
// Copilot (with `--experimental` set once) starts it as a child process and provides the SDK.
// The extension starts that command, reads JSON lines from it, calls `session.send` for each
// message (urgent ones in "immediate" mode, which steers a running turn; others "enqueue", which
// start a turn when idle or wait for the running one to end) and acks each one back.
// The contract (line protocol, acks, how `relay deliver` finds its session): docs/delivery.md.
//
// stdout is Copilot's JSON-RPC channel: nothing else may be written there. Logs go to
// $RELAY_EXTENSION_LOG, else <tmp>/relay-copilot-extension-<uid>.log. A dead extension is not
// restarted by Copilot, so nothing here may throw out of the process.

import { spawn } from "node:child_process";
import { appendFileSync, renameSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { joinSession } from "@github/copilot-sdk/extension";

const COMMAND = __RELAY_DELIVER_COMMAND__;
const LOG = process.env.RELAY_EXTENSION_LOG
    || join(tmpdir(), `relay-copilot-extension-${process.getuid?.() ?? "user"}.log`);
const LOG_MAX_BYTES = 1 << 20; // past this at start the log is moved to <log>.old
const RESTART_MIN_MS = 1000; // back-off after the deliver process exits, doubling...
const RESTART_MAX_MS = 30000; // ...up to this; reset once a run lasted RESTART_MAX_MS
const SENT_MEMORY = 1000; // msg_ids already handed to session.send (a re-offer is only acked)

function log(...parts) {
    const text = parts.map((p) => (p instanceof Error ? p.stack || p.message : String(p))).join(" ");
    try {
        appendFileSync(LOG, `${new Date().toISOString()} [${process.pid}] ${text}\n`);
    } catch {
        // nowhere left to log to; stdout is not an option
    }
}

try {
    if (statSync(LOG).size > LOG_MAX_BYTES) renameSync(LOG, `${LOG}.old`);
} catch {
    // no log yet
}
process.on("uncaughtException", (error) => log("uncaught exception:", error));
process.on("unhandledRejection", (error) => log("unhandled rejection:", error));

let session = null;
let child = null;
let stopping = false;
let restartDelay = RESTART_MIN_MS;
let queue = Promise.resolve(); // session.send calls, one at a time, in arrival order
const sent = new Set();

function write(proc, value) {
    if (proc.stdin.writable) proc.stdin.write(`${JSON.stringify(value)}\n`);
}

async function deliver(proc, message) {
    const id = message.msg_id;
    if (sent.has(id)) {
        // Handed over before, its ack lost with an earlier connection: do not send it twice.
        write(proc, { type: "ack", msg_id: id, step: "read" });
        return;
    }
    try {
        if (typeof message.text !== "string" || message.text === "") throw new Error("no text");
        const mode = message.urgent ? "immediate" : "enqueue";
        const messageId = await session.send({ prompt: message.text, mode });
        sent.add(id);
        if (sent.size > SENT_MEMORY) sent.delete(sent.values().next().value);
        log(`sent ${id} (${mode}) as ${messageId}`);
        write(proc, { type: "ack", msg_id: id, step: "read" });
    } catch (error) {
        log(`session.send failed for ${id}:`, error);
        const detail = `session.send failed: ${error?.message ?? error}`;
        write(proc, { type: "ack", msg_id: id, step: "refused", detail });
    }
}

function onLine(proc, line) {
    let message;
    try {
        message = JSON.parse(line);
    } catch {
        log("not JSON from relay deliver:", line.slice(0, 200));
        return;
    }
    if (message?.type === "message" && typeof message.msg_id === "string") {
        queue = queue.then(() => deliver(proc, message));
    } else if (["welcome", "waiting", "error"].includes(message?.type)) {
        log("relay deliver:", line.slice(0, 500));
    } else {
        log("ignored from relay deliver:", line.slice(0, 200));
    }
}

function start() {
    if (stopping) return;
    const startedAt = Date.now();
    let proc;
    try {
        proc = spawn(COMMAND[0], COMMAND.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
    } catch (error) {
        log("cannot start relay deliver:", error);
        scheduleRestart(startedAt);
        return;
    }
    child = proc;
    log(`started ${JSON.stringify(COMMAND)} pid ${proc.pid}`);
    let ended = false;
    const end = (why) => {
        if (ended) return;
        ended = true;
        log(`relay deliver ended: ${why}`);
        if (child === proc) child = null;
        scheduleRestart(startedAt);
    };
    proc.on("error", (error) => end(`error ${error.message}`));
    proc.on("close", (code, signal) => end(`exit ${signal ?? code}`));
    proc.stdin.on("error", (error) => log("relay deliver stdin:", error.message));
    createInterface({ input: proc.stdout }).on("line", (line) => onLine(proc, line));
    createInterface({ input: proc.stderr }).on("line", (line) => log("relay deliver stderr:", line));
}

function scheduleRestart(startedAt) {
    if (stopping) return;
    if (Date.now() - startedAt >= RESTART_MAX_MS) restartDelay = RESTART_MIN_MS;
    log(`restarting relay deliver in ${restartDelay} ms`);
    setTimeout(start, restartDelay);
    restartDelay = Math.min(restartDelay * 2, RESTART_MAX_MS);
}

function stop() {
    stopping = true;
    if (child) {
        child.stdin.end(); // relay deliver exits when its stdin closes
        child.kill("SIGTERM");
    }
    process.exit(0);
}

process.on("SIGTERM", stop); // how Copilot stops its extensions (on exit and /clear)
process.on("SIGINT", () => log("SIGINT ignored")); // a Ctrl-C meant for Copilot must not end delivery
try {
    session = await joinSession({});
    log(`joined session ${session.sessionId ?? process.env.SESSION_ID ?? "?"}`);
    start();
} catch (error) {
    log("joinSession failed, Relay delivery is off for this session:", error);
}
