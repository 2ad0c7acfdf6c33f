/**
 * `sesame demo`: the whole product on loopback in a few seconds. Starts a daemon with an
 * embedded config and a fresh secret, knocks it wrongly, rightly, and with a replay, and
 * shows the door opening for the right knock only and closing by itself.
 * @module
 */
import demoTemplate from "./demo.yaml" with { type: "text" };
import { codeAt } from "../code.ts";
import { parseConfig } from "../config/load.ts";
import { Daemon, type DaemonEvent } from "../daemon/daemon.ts";
import { sendKnock } from "../net/sender.ts";
import { generateSecret } from "../secret.ts";
import type { Knock } from "../knock.ts";
import { type FlagSpec, parseFlags } from "./args.ts";
import { loggingFromFlags } from "./listen.ts";

/** The flags of `sesame demo`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  "log-level": { type: "string" },
  "log-format": { type: "string" },
} satisfies FlagSpec;

const say = (text: string) => console.log(text);

async function knockFrom(source: string, knocks: readonly Knock[]): Promise<void> {
  for (const k of knocks) {
    await sendKnock(k, { host: "127.0.0.1", localAddress: source });
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `sesame demo`; exit 0 when everything behaved as it should. */
export async function demo(args: string[]): Promise<number> {
  const parsed = parseFlags("demo", args, FLAGS);
  await loggingFromFlags(parsed, "demo");
  const base = 20_000 + Math.floor(Math.random() * 9_000);
  const yaml = demoTemplate.replace("@SECRET@", generateSecret()).replace(
    "@POOL@",
    `${base}-${base + 99}`,
  );
  const config = parseConfig(yaml, "demo.yaml");
  const events: DaemonEvent[] = [];
  let wake = () => {};
  const daemon = await Daemon.start({
    config,
    onEvent: (e) => {
      events.push(e);
      wake();
    },
  });
  const waitFor = (kind: DaemonEvent["kind"], ms: number) =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      wake = () => {
        if (events.some((e) => e.kind === kind)) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      wake();
    });
  const door = config.doors[0];
  let ok = true;
  try {
    const { knocks, validUntil } = await codeAt(door, Date.now());
    const shown = knocks.map((k) => `${k.port}/${k.protocol}`).join(" ");
    say(`sesame demo: a daemon guards door "demo" on 127.0.0.1, knock ports ${base}-${base + 99}.`);
    say(`The door's code, derived from a fresh secret, is now: ${shown}`);
    say(`(it rotates at ${new Date(validUntil!).toISOString()}, and each code opens once)\n`);

    // One port off: the next port of the pool that is not in the code.
    const taken = new Set(knocks.map((k) => k.port));
    let off = knocks[2].port;
    do off = off + 1 > base + 99 ? base : off + 1; while (taken.has(off));
    say(`1. 127.0.0.3 knocks a wrong code (its third port is ${off}, not ${knocks[2].port}) ...`);
    await knockFrom("127.0.0.3", [knocks[0], knocks[1], { ...knocks[2], port: off }, knocks[3]]);
    const wrong = await waitFor("opened", 500);
    say(wrong ? "   the door opened: THIS IS A BUG" : "   nothing opens.\n");
    ok &&= !wrong;

    say("2. 127.0.0.2 knocks the code ...");
    await knockFrom("127.0.0.2", knocks);
    const opened = await waitFor("opened", 2000);
    const open = events.find((e) => e.kind === "opened");
    say(
      opened && open?.kind === "opened"
        ? `   door "demo" opened for ${open.source}, until ${new Date(open.until).toISOString()}.\n`
        : "   the door did not open: THIS IS A BUG",
    );
    ok &&= opened && open?.kind === "opened" && open.source === "127.0.0.2";

    say("3. 127.0.0.4 replays the code it observed ...");
    await knockFrom("127.0.0.4", knocks);
    const replay = await waitFor("replay", 1000);
    say(
      replay ? "   refused: a code opens once.\n" : "   the replay was not refused: THIS IS A BUG",
    );
    ok &&= replay;

    say("4. waiting for the door to close by itself (for: 3s) ...");
    const closed = await waitFor("closed", 5000);
    say(closed ? '   door "demo" closed.\n' : "   the door did not close: THIS IS A BUG");
    ok &&= closed;
  } finally {
    await daemon.stop();
  }
  say(
    ok
      ? "Demo finished: the door opened for the right knock only, and closed on time."
      : "Demo FAILED.",
  );
  return ok ? 0 : 1;
}
