// Runs the OpenCode plugin (assets/opencode/relay.js) under node with a fake OpenCode `client`
// (records session.promptAsync calls) and a fake `relay deliver`
// (tests/js/opencode_fake_deliver.mjs), one scenario per call; tests/opencode_plugin.rs runs
// each. Prints `ok: …` per check and `PASS <scenario>`; exits 1 with the reason on failure.
//
//   node tests/js/opencode_harness.mjs <scenario> <relay.js>
//   node tests/js/opencode_harness.mjs e2e <relay.js> '<command JSON>' <needle> <out.json>
//
// The e2e form (the end-to-end test) runs the plugin with the real `relay deliver` command,
// waits until a prompt containing <needle> arrived plus a quiet 2 s, and writes every prompt and
// what the plugin logged to <out.json>.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const PLACEHOLDER = "__RELAY_DELIVER_COMMAND__";
const [scenarioName, pluginSource, ...rest] = process.argv.slice(2);

function fail(message) {
  throw new Error(message);
}

function check(condition, message) {
  if (!condition) fail(message);
  console.log(`ok: ${message}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, predicate, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

const readLines = (path) =>
  existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];

/** A fake of the SDK client OpenCode 1.18.33 hands its plugins (the parts the plugin uses). */
function fakeClient({ sessions = [], answer = () => ({ data: {}, response: { status: 204 } }) } = {}) {
  const prompts = [];
  const promptTimes = [];
  const lists = [];
  const client = {
    prompts,
    promptTimes,
    lists,
    session: {
      async list(options) {
        lists.push(options);
        return { data: sessions, response: { status: 200 } };
      },
      async promptAsync(options) {
        prompts.push(options);
        promptTimes.push(Date.now());
        return answer(options, prompts.length);
      },
    },
  };
  return client;
}

/** Imports a copy of the plugin with the placeholder replaced by `command`. */
async function loadPlugin(dir, command) {
  const source = readFileSync(pluginSource, "utf8");
  const count = source.split(PLACEHOLDER).length - 1;
  if (count !== 1) fail(`${pluginSource} holds ${PLACEHOLDER} ${count} times, not once`);
  const file = join(dir, "relay.js");
  writeFileSync(file, source.replace(PLACEHOLDER, JSON.stringify(command)));
  const module = await import(pathToFileURL(file).href);
  const factories = Object.values(module).filter((value) => typeof value === "function");
  check(factories.length === 1, "the plugin module exports one plugin function");
  return factories[0];
}

const PLUGIN_INPUT = { project: { id: "global", worktree: "/" }, directory: "/tmp", worktree: "/", serverUrl: new URL("http://localhost:4096/") };
const welcome = { line: { type: "welcome", name: "bob", delivery: "opencode-plugin" } };
const message = (id, text) => ({ line: { type: "message", msg_id: id, from: "alice", kind: "direct", urgent: false, text } });
const session = (id, updated, extra = {}) => ({ id, title: id, time: { created: updated, updated }, ...extra });
const event = (type, properties) => ({ event: { id: `evt_${type}`, type, properties } });
const textOf = (prompt) => prompt.body.parts.map((part) => part.text).join("");

/**
 * Each scenario: the fake deliver's runs, the fake client, what to do with the hooks, when it
 * is done, and the checks. `s` holds prompts, lines (what the plugin wrote to deliver), starts,
 * log (the plugin's log file) and hooks.
 */
const SCENARIOS = {
  // A message becomes exactly one promptAsync to the session that last called a relay tool,
  // with the text as the one part; it is acked read. Other lines are logged and skipped.
  deliver: {
    runs: [[
      { line: { type: "waiting", reason: "no session found yet" } },
      welcome,
      { raw: "not json at all" },
      { line: { type: "mystery" } },
      { stderr: "a diagnostic line from relay deliver" },
      { sleep: 300 },
      message("m-1", '<peer-message from="alice" msg_id="m-1">hello bob</peer-message>'),
      message("m-2", 'two\nwith "quotes" and ünïcode'),
    ]],
    client: () => fakeClient({ sessions: [session("ses_newest", 300), session("ses_b", 100)] }),
    async setup(hooks) {
      await hooks.event(event("session.status", { sessionID: "ses_active", status: { type: "busy" } }));
      await hooks["tool.execute.before"]({ tool: "relay_relay_inbox", sessionID: "ses_b", callID: "c1" }, { args: {} });
      await hooks["tool.execute.before"]({ tool: "bash", sessionID: "ses_other", callID: "c2" }, { args: {} });
      await hooks.event(event("message.updated", { sessionID: "ses_active", info: { id: "msg_1", sessionID: "ses_active" } }));
    },
    done: (s) => s.lines.length >= 2,
    verify(s) {
      check(s.prompts.length === 2, `2 promptAsync calls (got ${s.prompts.length})`);
      check(JSON.stringify(s.prompts[0]) === JSON.stringify({
        path: { id: "ses_b" },
        body: { parts: [{ type: "text", text: '<peer-message from="alice" msg_id="m-1">hello bob</peer-message>' }] },
      }), "m-1 prompted as one text part into ses_b (the session that called relay_relay_inbox)");
      check(textOf(s.prompts[1]) === 'two\nwith "quotes" and ünïcode' && s.prompts[1].path.id === "ses_b", "m-2 text intact, same session");
      check(JSON.stringify(s.lines.map(({ run, ...line }) => line)) === JSON.stringify([
        { type: "ack", msg_id: "m-1", step: "read" },
        { type: "ack", msg_id: "m-2", step: "read" },
      ]), "acks read for m-1 then m-2, and nothing else written to relay deliver");
      check(s.starts.length === 1, "relay deliver started once");
      check(s.log.includes("a diagnostic line from relay deliver"), "its stderr went to the log file");
      check(s.log.includes("not JSON") && s.log.includes("mystery"), "unknown lines were logged and skipped");
      check(s.log.includes("waiting: no session found yet"), "the waiting line was logged");
    },
  },
  // Without a relay tool call: the session last active in events; before any event, the newest
  // top-level session OpenCode lists (a subagent's child session is never chosen).
  target: {
    runs: [[
      welcome,
      message("m-1", "to the newest listed"), { wait_lines: 1 },
      message("m-2", "to the active one"), { wait_lines: 2 },
      message("m-3", "to the relay caller"), { wait_lines: 3 },
      message("m-4", "still the relay caller"),
    ]],
    client: () => fakeClient({
      sessions: [session("ses_old", 100), session("ses_sub", 900, { parentID: "ses_new" }), session("ses_new", 500)],
    }),
    // The hooks fire while a prompt is being made, so the next message sees the new state.
    onPrompt: async (hooks, n) => {
      if (n === 1) {
        await hooks.event(event("session.updated", { sessionID: "ses_sub", info: { id: "ses_sub", parentID: "ses_new" } }));
        await hooks.event(event("session.status", { sessionID: "ses_sub", status: { type: "busy" } }));
        await hooks.event(event("session.status", { sessionID: "ses_old", status: { type: "busy" } }));
        await hooks.event(event("session.status", { sessionID: "ses_sub", status: { type: "busy" } }));
        await hooks["tool.execute.before"]({ tool: "relay_relay_send", sessionID: "ses_sub", callID: "c0" }, { args: {} });
      }
      if (n === 2) {
        await hooks["tool.execute.before"]({ tool: "relay_relay_peers", sessionID: "ses_caller", callID: "c1" }, { args: {} });
        await hooks.event(event("session.status", { sessionID: "ses_old", status: { type: "idle" } }));
      }
    },
    done: (s) => s.lines.length >= 4,
    verify(s) {
      check(s.prompts.map((p) => p.path.id).join(",") === "ses_new,ses_old,ses_caller,ses_caller",
        `targets newest listed, last active, relay caller, relay caller (got ${s.prompts.map((p) => p.path.id)})`);
      check(s.lists.length === 1, "session.list asked only while nothing better was known");
      check(s.lines.every((l) => l.step === "read"), "all acked read");
    },
  },
  // promptAsync answering an error (OpenCode's 404 for an unknown session) or throwing is acked
  // refused with a detail; the next message still goes through.
  refused: {
    runs: [[welcome, message("m-1", "gets a 404"), message("m-2", "throws"), message("m-3", "fine")]],
    client: () => fakeClient({
      sessions: [session("ses_a", 1)],
      answer: (_, n) => {
        if (n === 1) return { error: { name: "NotFoundError", data: { message: "Session not found: ses_a" } }, response: { status: 404 } };
        if (n === 2) throw new Error("connection reset");
        return { data: {}, response: { status: 204 } };
      },
    }),
    done: (s) => s.lines.length >= 3,
    verify(s) {
      const [first, second, third] = ["m-1", "m-2", "m-3"].map((id) => s.lines.find((l) => l.msg_id === id));
      check(first.msg_id === "m-1" && first.step === "refused" && /session\.promptAsync failed: HTTP 404: Session not found: ses_a/.test(first.detail),
        `m-1 acked refused with the error (${first.detail})`);
      check(second.msg_id === "m-2" && second.step === "refused" && /connection reset/.test(second.detail), `m-2 acked refused (${second.detail})`);
      check(third.msg_id === "m-3" && third.step === "read", "m-3 acked read");
      check(s.prompts.length === 3, "one promptAsync per message");
    },
  },
  // A refused message is offered again at once (docs/delivery.md): each further refusal is
  // acked later (250, 500, 1000 ms), and a prompt that works resets the back-off.
  refuse_backoff: {
    runs: [[welcome, message("m-1", "x"), { wait_lines: 1 }, message("m-1", "x"), { wait_lines: 2 },
      message("m-1", "x"), { wait_lines: 3 }, message("m-1", "x"), { wait_lines: 4 }, message("m-2", "y")]],
    client: () => fakeClient({
      sessions: [session("ses_a", 1)],
      answer: (_, n) => (n <= 3 ? { error: { data: { message: "busy elsewhere" } }, response: { status: 500 } } : { response: { status: 204 } }),
    }),
    done: (s) => s.lines.length >= 5,
    verify(s) {
      const offered = s.prompts.map((p, i) => s.promptTimes[i]);
      const gaps = s.lineTimes.slice(0, 3).map((t, i) => t - offered[i]);
      check(gaps[0] >= 200 && gaps[1] >= 450 && gaps[2] >= 950, `refusals acked after growing delays (${gaps} ms)`);
      check(JSON.stringify(s.lines.map((l) => l.step)) === JSON.stringify(["refused", "refused", "refused", "read", "read"]),
        "3 refused, then read for m-1 and m-2");
      check(s.lineTimes[4] - s.lineTimes[3] < 200, "after a prompt that worked, no delay");
    },
  },
  // No session at all (empty list, no events): refused, never prompted.
  no_session: {
    runs: [[welcome, message("m-1", "nobody home")]],
    client: () => fakeClient({ sessions: [] }),
    done: (s) => s.lines.length >= 1,
    verify(s) {
      check(s.prompts.length === 0, "nothing prompted");
      check(s.lines[0].step === "refused" && /no OpenCode session/.test(s.lines[0].detail), `acked refused (${s.lines[0].detail})`);
    },
  },
  // relay deliver exits (a crash): it is started again after a back-off. A message whose ack
  // was lost with the old one and is offered again is acked without a second prompt.
  restart: {
    runs: [
      [welcome, message("m-1", "first"), { wait_lines: 1 }, { exit: 3 }],
      [welcome, message("m-2", "during a crash"), { sleep: 20 }, { exit: 1 }],
      [welcome, message("m-2", "during a crash"), message("m-3", "after")],
    ],
    client: () => fakeClient({ sessions: [session("ses_a", 1)], answer: async () => { await sleep(100); return { response: { status: 204 } }; } }),
    done: (s) => s.starts.length >= 3 && s.lines.filter((l) => l.run === 2).length >= 2,
    verify(s) {
      check(s.starts.length === 3, `relay deliver started 3 times (got ${s.starts.length})`);
      const gap = s.starts[1].t - s.exits[0].t;
      check(gap >= 400 && gap < 3000, `restarted after a back-off (${gap} ms)`);
      check(s.prompts.map(textOf).join("|") === "first|during a crash|after", `each message prompted once (got ${s.prompts.map(textOf)})`);
      check(s.lines.filter((l) => l.run === 1).length === 0, "no ack written to the dead run");
      check(JSON.stringify(s.lines.filter((l) => l.run === 2).map((l) => [l.msg_id, l.step])) === JSON.stringify([["m-2", "read"], ["m-3", "read"]]),
        "the new run got read for the re-offered m-2 and for m-3");
    },
  },
  // A command that cannot start is retried with a growing back-off, without throwing.
  bad_command: {
    command: () => ["/nonexistent/relay-deliver-does-not-exist", "deliver", "--client", "opencode"],
    client: () => fakeClient({ sessions: [session("ses_a", 1)] }),
    done: (s) => (s.log.match(/restarting relay deliver/g) ?? []).length >= 3,
    timeoutMs: 8000,
    verify(s) {
      check(/ENOENT/.test(s.log), "the spawn error was logged");
      check(/in 500 ms[\s\S]*in 1000 ms[\s\S]*in 2000 ms/.test(s.log), "back-off 500, 1000, 2000 ms");
    },
  },
  // OpenCode 1.18.33 waits for a plugin's function before it answers the client, so the plugin
  // must not wait for the client there; and no hook ever throws, whatever it is given.
  robust: {
    runs: [[welcome]],
    client: () => ({ session: { list: () => new Promise(() => {}), promptAsync: () => new Promise(() => {}) }, prompts: [], lists: [] }),
    async setup(hooks) {
      for (const input of [undefined, null, {}, { event: null }, { event: { type: 7 } }, { event: { type: "session.deleted", properties: null } }]) {
        await hooks.event(input);
      }
      for (const input of [undefined, null, {}, { tool: 5 }, { tool: "relay_x" }]) await hooks["tool.execute.before"](input, undefined);
      check(true, "hooks given nonsense resolved without throwing");
    },
    done: (s) => s.starts.length >= 1,
    verify(s) {
      check(s.initMs < 1000, `the plugin function resolved at once (${s.initMs} ms) although every client call hangs`);
    },
  },
};

async function runScenario(name, spec) {
  const dir = mkdtempSync(join(tmpdir(), "relay-opencode-plugin-"));
  process.env.RELAY_PLUGIN_LOG = join(dir, "plugin.log");
  writeFileSync(join(dir, "script.json"), JSON.stringify({ runs: spec.runs ?? [[]] }));
  const command = spec.command?.() ?? [process.execPath, join(here, "opencode_fake_deliver.mjs"), dir];
  const plugin = await loadPlugin(dir, command);
  const client = spec.client();
  // Nothing may reach OpenCode's stdout or stderr.
  const written = [];
  const realWrite = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
  const state = () => {
    const events = readLines(join(dir, "events.jsonl"));
    return {
      prompts: client.prompts,
      promptTimes: client.promptTimes,
      lists: client.lists,
      lines: events.filter((e) => e.ev === "line").map((e) => ({ ...e.line, run: e.run })),
      lineTimes: events.filter((e) => e.ev === "line").map((e) => e.t),
      starts: events.filter((e) => e.ev === "start"),
      exits: events.filter((e) => e.ev === "exit"),
      log: existsSync(process.env.RELAY_PLUGIN_LOG) ? readFileSync(process.env.RELAY_PLUGIN_LOG, "utf8") : "",
    };
  };
  let hooks;
  let initMs;
  process.stdout.write = (chunk) => (written.push(String(chunk)), true);
  process.stderr.write = (chunk) => (written.push(String(chunk)), true);
  try {
    const started = Date.now();
    hooks = await plugin({ client, ...PLUGIN_INPUT, $: () => fail("the plugin used $") });
    initMs = Date.now() - started;
    if (spec.onPrompt) {
      const original = client.session.promptAsync;
      client.session.promptAsync = async (options) => {
        const answer = await original(options);
        await spec.onPrompt(hooks, client.prompts.length);
        return answer;
      };
    }
  } finally {
    process.stdout.write = realWrite.out;
    process.stderr.write = realWrite.err;
  }
  check(typeof hooks?.event === "function" && typeof hooks["tool.execute.before"] === "function", "the plugin returns the event and tool.execute.before hooks");
  if (spec.setup) await spec.setup(hooks);
  process.stdout.write = (chunk) => (written.push(String(chunk)), true);
  process.stderr.write = (chunk) => (written.push(String(chunk)), true);
  let done;
  try {
    done = await waitFor(`the ${name} scenario to finish`, () => (spec.done(state()) ? state() : null), spec.timeoutMs ?? 10_000)
      .catch((error) => error);
    await sleep(300); // a duplicate prompt or ack would show up by now
  } finally {
    process.stdout.write = realWrite.out;
    process.stderr.write = realWrite.err;
  }
  if (done instanceof Error) {
    const s = state();
    console.log(`prompts: ${JSON.stringify(s.prompts)}\nlines: ${JSON.stringify(s.lines)}\nlog:\n${s.log}`);
    throw done;
  }
  const final = { ...state(), initMs };
  spec.verify(final);
  check(written.length === 0, `nothing written to stdout or stderr (got ${JSON.stringify(written.slice(0, 3))})`);
  rmSync(dir, { recursive: true, force: true });
}

async function runEndToEnd(commandJson, needle, outPath) {
  const dir = mkdtempSync(join(tmpdir(), "relay-opencode-e2e-"));
  process.env.RELAY_PLUGIN_LOG = join(dir, "plugin.log");
  const plugin = await loadPlugin(dir, JSON.parse(commandJson));
  const client = fakeClient({ sessions: [session("ses_e2e", 1)] });
  const hooks = await plugin({ client, ...PLUGIN_INPUT, $: () => fail("the plugin used $") });
  await hooks["tool.execute.before"]({ tool: "relay_relay_peers", sessionID: "ses_e2e", callID: "c1" }, { args: {} });
  console.log("READY");
  const log = () => (existsSync(process.env.RELAY_PLUGIN_LOG) ? readFileSync(process.env.RELAY_PLUGIN_LOG, "utf8") : "");
  let error = null;
  try {
    await waitFor(`a prompt containing ${needle}`, () => client.prompts.some((p) => textOf(p).includes(needle)), 30_000);
    await sleep(2000);
  } catch (caught) {
    error = caught.message;
  }
  writeFileSync(outPath, JSON.stringify({ prompts: client.prompts, log: log(), error }));
  rmSync(dir, { recursive: true, force: true });
  process.exit(error ? 1 : 0);
}

try {
  if (scenarioName === "e2e") {
    await runEndToEnd(...rest);
  } else {
    const spec = SCENARIOS[scenarioName];
    if (!spec || !pluginSource) fail(`usage: opencode_harness.mjs <${Object.keys(SCENARIOS).join("|")}> <relay.js>`);
    await runScenario(scenarioName, spec);
    console.log(`PASS ${scenarioName}`);
    process.exit(0); // the plugin's relay deliver child dies with its stdin
  }
} catch (error) {
  console.log(`FAIL ${scenarioName}: ${error?.stack ?? error}`);
  process.exit(1);
}
