// Runs assets/copilot/extension.mjs under node against a fake Copilot SDK
// (tests/js/copilot_sdk/) and a fake `relay deliver` (tests/js/copilot_fake_deliver.mjs), one
// scenario per call; tests/copilot_extension.rs runs each. Prints what it checked; exits 1 with
// the reason on failure.
//
//   node tests/js/copilot_harness.mjs <scenario> [<extension.mjs>]
//   node tests/js/copilot_harness.mjs --with-command '<JSON array>' <extension.mjs> <out dir>
//
// The second form (used by the end-to-end test) only prepares <out dir> (extension with the
// placeholder replaced by the given command, next to node_modules/@github/copilot-sdk) and prints
// the path of the extension to run.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const PLACEHOLDER = "__RELAY_DELIVER_COMMAND__";

function fail(message) {
    throw new Error(message);
}

function check(condition, message) {
    if (!condition) fail(message);
    console.log(`ok: ${message}`);
}

/** Writes <dir>/extension.mjs with the placeholder replaced, and the fake SDK beside it. */
export function prepare(extensionSource, command, dir) {
    const source = readFileSync(extensionSource, "utf8");
    const count = source.split(PLACEHOLDER).length - 1;
    if (count !== 1) fail(`${extensionSource} holds ${PLACEHOLDER} ${count} times, not once`);
    const sdk = join(dir, "node_modules", "@github", "copilot-sdk");
    mkdirSync(dirname(sdk), { recursive: true });
    if (!existsSync(sdk)) symlinkSync(join(here, "copilot_sdk"), sdk, "dir");
    const extension = join(dir, "extension.mjs");
    writeFileSync(extension, source.replace(PLACEHOLDER, JSON.stringify(command)));
    return extension;
}

const readLines = (path) =>
    existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];

async function waitFor(what, predicate, timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = predicate();
        if (value) return value;
        if (Date.now() > deadline) fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

function alive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

const message = (id, text, urgent = false) => ({
    line: { type: "message", msg_id: id, from: "alice", kind: "direct", urgent, text },
});
const welcome = { line: { type: "welcome", name: "bob", delivery: "copilot-extension" } };

/** Each scenario: the fake deliver's runs, extra env, what to wait for, and the checks. */
const SCENARIOS = {
    // Every message becomes exactly one session.send with its mode, and is acked read.
    deliver: {
        runs: [[
            { line: { type: "waiting", reason: "no session yet" } },
            welcome,
            { raw: "not json at all" },
            { line: { type: "mystery" } },
            { stderr: "a diagnostic line from relay deliver" },
            message("m-1", '<peer-message from="alice" msg_id="m-1">one</peer-message>'),
            message("m-2", "two, urgent", true),
            message("m-3", "three\nwith \"quotes\" and ünïcode"),
        ]],
        done: (s) => s.acks.length >= 3,
        verify(s) {
            check(s.sends.length === 3, `3 session.send calls (got ${s.sends.length})`);
            check(s.sends[0].prompt === '<peer-message from="alice" msg_id="m-1">one</peer-message>'
                && s.sends[0].mode === "enqueue", "m-1 sent as is, mode enqueue");
            check(s.sends[1].prompt === "two, urgent" && s.sends[1].mode === "immediate", "urgent m-2 sent in mode immediate");
            check(s.sends[2].prompt === "three\nwith \"quotes\" and ünïcode" && s.sends[2].mode === "enqueue", "m-3 text intact");
            check(s.sends.every((c) => c.other.length === 0), "only prompt and mode passed to session.send");
            check(JSON.stringify(s.acks.map((a) => a.line)) === JSON.stringify([
                { type: "ack", msg_id: "m-1", step: "read" },
                { type: "ack", msg_id: "m-2", step: "read" },
                { type: "ack", msg_id: "m-3", step: "read" },
            ]), "acks read for m-1, m-2, m-3, in order, nothing else");
            check(s.starts.length === 1, "relay deliver started once");
            check(s.log.includes("a diagnostic line from relay deliver"), "its stderr went to the log file");
            check(s.log.includes("not JSON"), "a non-JSON line was logged and skipped");
            check(s.joins.length === 1, "joinSession called once");
        },
    },
    // A send that rejects is acked refused with a detail; the next message still goes through.
    refused: {
        env: { FAKE_COPILOT_SEND_REJECT: "REJECT-ME" },
        runs: [[welcome, message("m-1", "please REJECT-ME"), message("m-2", "fine")]],
        done: (s) => s.acks.length >= 2,
        verify(s) {
            check(s.sends.length === 2, "one session.send per message");
            const [first, second] = s.acks.map((a) => a.line);
            check(first.msg_id === "m-1" && first.step === "refused"
                && /session\.send failed: .*fake send rejected/.test(first.detail), `m-1 acked refused with a detail (${first.detail})`);
            check(second.msg_id === "m-2" && second.step === "read", "m-2 acked read");
        },
    },
    // relay deliver exits: it is started again after a back-off; a message handed over by the
    // dead one (its ack lost) and offered again is acked without a second session.send.
    restart: {
        runs: [
            [welcome, message("m-1", "first"), { wait_acks: 1 }, { exit: 3 }],
            [welcome, message("m-2", "second"), { wait_acks: 1 }, { exit: 0 }],
            [welcome, message("m-3", "third"), { exit: 1 }],
            [welcome, message("m-3", "third"), message("m-4", "fourth")],
        ],
        done: (s) => s.starts.length >= 4 && s.acks.filter((a) => a.run === 3).length >= 2,
        timeoutMs: 20000,
        verify(s) {
            check(s.starts.length === 4, "relay deliver started 4 times (3 exits)");
            const gaps = s.starts.slice(1).map((start, i) => start.t - s.exits[i].t);
            check(gaps[0] >= 900 && gaps[1] >= 1900 && gaps[2] >= 3900, `restarts back off (gaps ${gaps.join(", ")} ms)`);
            check(JSON.stringify(s.sends.map((c) => c.prompt)) === JSON.stringify(["first", "second", "third", "fourth"]),
                "each message sent exactly once (m-3 offered twice)");
            const last = s.acks.filter((a) => a.run === 3).map((a) => `${a.line.msg_id}:${a.line.step}`);
            check(JSON.stringify(last) === JSON.stringify(["m-3:read", "m-4:read"]), "the re-offered m-3 acked read again, m-4 read");
        },
    },
    // A command that cannot be started (not installed, moved): no crash, logged, retried.
    spawn_fails: {
        command: ["/nonexistent/relay", "deliver", "--client", "copilot"],
        runs: [[]],
        done: (s) => (s.log.match(/relay deliver ended/g) || []).length >= 2,
        verify(s) {
            check(s.sends.length === 0, "nothing sent");
            check(/ENOENT/.test(s.log), "the spawn error was logged");
            check(s.alive, "the extension kept running");
        },
    },
};

async function runScenario(name, extensionSource) {
    const scenario = SCENARIOS[name] || fail(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(", ")}`);
    const dir = mkdtempSync(join(tmpdir(), `relay-copilot-ext-${name}-`));
    try {
        const deliverDir = join(dir, "deliver");
        mkdirSync(deliverDir);
        writeFileSync(join(deliverDir, "script.json"), JSON.stringify({ runs: scenario.runs }));
        const command = scenario.command || [process.execPath, join(here, "copilot_fake_deliver.mjs"), "deliver", "--client", "copilot"];
        const extension = prepare(extensionSource, command, dir);
        const paths = { sdk: join(dir, "sdk.jsonl"), events: join(deliverDir, "events.jsonl"), log: join(dir, "extension.log") };
        const env = {
            ...process.env,
            FAKE_COPILOT_SDK_LOG: paths.sdk,
            FAKE_DELIVER_DIR: deliverDir,
            RELAY_EXTENSION_LOG: paths.log,
            ...scenario.env,
        };
        const proc = spawn(process.execPath, [extension], { cwd: dir, env, stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        proc.stdout.on("data", (d) => (stdout += d));
        proc.stderr.on("data", (d) => (stderr += d));
        let exited = null;
        proc.on("exit", (code, signal) => (exited = { code, signal }));
        const state = () => {
            const sdk = readLines(paths.sdk);
            const events = readLines(paths.events);
            return {
                sends: sdk.filter((e) => e.ev === "send"),
                joins: sdk.filter((e) => e.ev === "join"),
                starts: events.filter((e) => e.ev === "start"),
                exits: events.filter((e) => e.ev === "exit"),
                acks: events.filter((e) => e.ev === "ack"),
                log: existsSync(paths.log) ? readFileSync(paths.log, "utf8") : "",
                alive: exited === null,
            };
        };
        try {
            await waitFor(`scenario ${name} to finish`, () => exited !== null || scenario.done(state()), scenario.timeoutMs);
            await new Promise((r) => setTimeout(r, 300)); // a duplicate send or ack would show by now
            const s = state();
            check(exited === null, `the extension is still running (stderr: ${stderr.trim() || "none"})`);
            scenario.verify(s);
            const children = s.starts.map((e) => e.pid).filter(alive);
            proc.kill("SIGTERM");
            await waitFor("the extension to exit on SIGTERM", () => exited !== null, 5000);
            check(exited.code === 0 || exited.signal === "SIGTERM", `the extension exited on SIGTERM (${JSON.stringify(exited)})`);
            await waitFor("relay deliver to exit with the extension", () => !children.some(alive), 5000);
            check(true, "no relay deliver child left running");
            check(stdout === "", `nothing written to stdout (got ${JSON.stringify(stdout.slice(0, 200))})`);
            console.log(`PASS ${name}`);
        } finally {
            if (exited === null) proc.kill("SIGKILL");
            for (const e of readLines(paths.events)) if (e.ev === "start" && alive(e.pid)) process.kill(e.pid, "SIGKILL");
            if (process.env.RELAY_TEST_KEEP) console.log(`kept ${dir}`);
        }
    } finally {
        if (!process.env.RELAY_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
    }
}

const args = process.argv.slice(2);
const defaultExtension = resolve(here, "..", "..", "assets", "copilot", "extension.mjs");
try {
    if (args[0] === "--with-command") {
        const [, command, extensionSource, out] = args;
        mkdirSync(out, { recursive: true });
        console.log(prepare(extensionSource, JSON.parse(command), out));
    } else {
        await runScenario(args[0], args[1] || defaultExtension);
    }
} catch (error) {
    console.log(`FAIL ${args[0]}: ${error.message}`);
    process.exit(1);
}
