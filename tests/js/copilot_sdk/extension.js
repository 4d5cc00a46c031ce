// A fake of the `@github/copilot-sdk/extension` module the Copilot CLI provides to extensions,
// for tests/js/copilot_harness.mjs. It records every call as one JSON line in
// $FAKE_COPILOT_SDK_LOG:
//   {"ev":"join","config":[...keys]}  {"ev":"send","prompt":..,"mode":..,"t":..}  {"ev":"on","event":..}
// session.send resolves with a message id (as the real one does once the message is admitted),
// or rejects when the prompt contains $FAKE_COPILOT_SEND_REJECT.
import { appendFileSync } from "node:fs";
import { randomUUID } from "node:crypto";

const LOG = process.env.FAKE_COPILOT_SDK_LOG;
const REJECT = process.env.FAKE_COPILOT_SEND_REJECT;

function record(value) {
    appendFileSync(LOG, `${JSON.stringify({ ...value, t: Date.now() })}\n`);
}

export async function joinSession(config = {}) {
    record({ ev: "join", config: Object.keys(config) });
    return {
        sessionId: "fake-session",
        async send(options) {
            const { prompt, mode, ...rest } = typeof options === "string" ? { prompt: options } : options;
            record({ ev: "send", prompt, mode, other: Object.keys(rest) });
            await new Promise((resolve) => setTimeout(resolve, 5));
            if (REJECT && String(prompt).includes(REJECT)) throw new Error("fake send rejected");
            return randomUUID();
        },
        on(event) {
            record({ ev: "on", event: typeof event === "string" ? event : "*" });
            return () => {};
        },
    };
}
