// A stand-in for `relay deliver --client copilot` (docs/delivery.md), for
// tests/js/copilot_harness.mjs. State lives in $FAKE_DELIVER_DIR:
//   script.json  {"runs": [[STEP, ...], ...]}: the steps of the first run, the second run...
//                (a run past the last one repeats the last)
//   events.jsonl what happened, one JSON line each: {"ev":"start","run":N,"pid":P},
//                {"ev":"ack","run":N,"line":{...}}, {"ev":"stdin_end","run":N}, {"ev":"exit",...}
// STEP is {"line": {...}} (printed as one JSON line), {"raw": "text"} (printed as is),
// {"stderr": "text"}, {"wait_acks": N} (until N acks arrived in this run), {"sleep": ms} or
// {"exit": code}. After the last step it waits for stdin to close, then exits 0, like the real one.
import { appendFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const dir = process.env.FAKE_DELIVER_DIR;
const eventsPath = join(dir, "events.jsonl");
const record = (value) => appendFileSync(eventsPath, `${JSON.stringify({ ...value, t: Date.now() })}\n`);

let run = 0;
try {
    run = readFileSync(eventsPath, "utf8").split("\n").filter((l) => l.includes('"ev":"start"')).length;
} catch {
    // first run
}
const runs = JSON.parse(readFileSync(join(dir, "script.json"), "utf8")).runs;
const steps = runs[Math.min(run, runs.length - 1)];
record({ ev: "start", run, pid: process.pid, argv: process.argv.slice(2) });

const acks = [];
let ackWaiter = null;
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
    let parsed = line;
    try {
        parsed = JSON.parse(line);
    } catch {
        // recorded as the raw string
    }
    record({ ev: "ack", run, line: parsed });
    acks.push(parsed);
    ackWaiter?.();
});
const stdinClosed = new Promise((resolve) => input.on("close", resolve));

for (const step of steps) {
    if (step.line) process.stdout.write(`${JSON.stringify(step.line)}\n`);
    if (step.raw !== undefined) process.stdout.write(`${step.raw}\n`);
    if (step.stderr !== undefined) process.stderr.write(`${step.stderr}\n`);
    if (step.sleep) await new Promise((resolve) => setTimeout(resolve, step.sleep));
    if (step.wait_acks) {
        while (acks.length < step.wait_acks) await new Promise((resolve) => (ackWaiter = resolve));
    }
    if (step.exit !== undefined) {
        record({ ev: "exit", run, code: step.exit });
        process.exit(step.exit);
    }
}
await stdinClosed;
record({ ev: "stdin_end", run });
process.exit(0);
