// A stand-in for `relay deliver --client opencode` (docs/delivery.md), spawned by the OpenCode
// plugin under tests/js/opencode_harness.mjs. Usage: node opencode_fake_deliver.mjs DIR
//   DIR/script.json  {"runs": [[STEP, ...], ...]}: the steps of the first start, the second...
//                    (starts past the last run repeat the last one)
//   DIR/events.jsonl what happened: {"ev":"start","run":N,"pid":P}, {"ev":"line","run":N,
//                    "line":{...}} (every line the plugin wrote), {"ev":"exit","run":N,"code":C},
//                    {"ev":"stdin_end","run":N}
// STEP is {"line": {...}} (printed as one JSON line), {"raw": "text"} (printed as is),
// {"stderr": "text"}, {"wait_lines": N} (until the plugin wrote N lines in this run),
// {"sleep": ms} or {"exit": code}. After the last step it waits for stdin to close and exits 0,
// as the real one does.
import { appendFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const dir = process.argv[2];
const eventsPath = join(dir, "events.jsonl");
const record = (value) => appendFileSync(eventsPath, `${JSON.stringify({ ...value, t: Date.now() })}\n`);

let run = 0;
try {
  run = readFileSync(eventsPath, "utf8").split("\n").filter((l) => l.includes('"ev":"start"')).length;
} catch {
  // the first start
}
const runs = JSON.parse(readFileSync(join(dir, "script.json"), "utf8")).runs;
const steps = runs[Math.min(run, runs.length - 1)];
record({ ev: "start", run, pid: process.pid, ppid: process.ppid });

const lines = [];
let waiter = null;
const input = createInterface({ input: process.stdin });
input.on("line", (text) => {
  let line = text;
  try {
    line = JSON.parse(text);
  } catch {
    // recorded as the raw string
  }
  record({ ev: "line", run, line });
  lines.push(line);
  waiter?.();
});
const stdinClosed = new Promise((resolve) => input.on("close", resolve));

for (const step of steps) {
  if (step.line) process.stdout.write(`${JSON.stringify(step.line)}\n`);
  if (step.raw !== undefined) process.stdout.write(`${step.raw}\n`);
  if (step.stderr !== undefined) process.stderr.write(`${step.stderr}\n`);
  if (step.sleep) await new Promise((resolve) => setTimeout(resolve, step.sleep));
  if (step.wait_lines) {
    while (lines.length < step.wait_lines) await new Promise((resolve) => (waiter = resolve));
  }
  if (step.exit !== undefined) {
    record({ ev: "exit", run, code: step.exit });
    process.exit(step.exit);
  }
}
await stdinClosed;
record({ ev: "stdin_end", run });
process.exit(0);
