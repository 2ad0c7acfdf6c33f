/** `sesame knock`: send a door's current sequence, or a static knockd-style one. @module */
import { parseAddress } from "../address.ts";
import { codeForCounter } from "../code.ts";
import { counterForKnock } from "../window.ts";
import { parseKnock } from "../knock.ts";
import { UsageError } from "../errors.ts";
import type { Knock, Protocol } from "../knock.ts";
import { type KnockResult, sendDatagram, sendKnock, waitForOpen } from "../net/sender.ts";
import type { SpaDoor } from "../config/types.ts";
import { encodeSpa } from "../spa/fko.ts";
import { type FlagSpec, parseFlags, stringFlag } from "./args.ts";
import {
  knockMemoryPath,
  memoryKey,
  nextCounter,
  readKnockMemory,
  rememberKnock,
} from "../net/knock_memory.ts";
import { defaultClientConfig, findDoor, loadPrivateConfig } from "./common.ts";
import { localAddressFor, resolve } from "./knock_address.ts";
import { counterAt } from "../sequence.ts";

/** The flags of `sesame knock`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  config: { type: "string", short: "c" },
  door: { type: "string" },
  udp: { type: "boolean", short: "u" },
  delay: { type: "string", short: "d" },
  "tcp-timeout": { type: "string" },
  ipv4: { type: "boolean", short: "4" },
  ipv6: { type: "boolean", short: "6" },
  from: { type: "string" },
  access: { type: "string" },
  source: { type: "string" },
  "wait-open": { type: "string" },
  "wait-timeout": { type: "string" },
  json: { type: "boolean" },
  verbose: { type: "boolean", short: "v" },
  quiet: { type: "boolean", short: "q" },
  exec: { type: "boolean" },
  "insecure-permissions": { type: "boolean" },
} satisfies FlagSpec;

/** The default gap between knocks, ms: keeps a client's knocks in order on the way. */
export const DEFAULT_DELAY_MS = 50;

function intFlag(
  value: string | undefined,
  flag: string,
  min: number,
  max: number,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(
      `knock: ${flag} must be a whole number ${min}–${max}, received ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** Runs `sesame knock`; returns the exit code. */
export async function knock(argv: string[]): Promise<number> {
  const dashes = argv.indexOf("--");
  const args = dashes < 0 ? argv : argv.slice(0, dashes);
  const exec = dashes < 0 ? undefined : argv.slice(dashes + 1);
  const parsed = parseFlags("knock", args, FLAGS, true);
  const [host, ...ports] = parsed.positionals;
  if (!host) throw new UsageError(`knock: give a HOST\nRun "sesame knock --help" for usage.`);
  if (parsed.values.exec && !exec?.length) {
    throw new UsageError("knock: --exec needs a command after --");
  }
  if (exec?.length && !parsed.values.exec) {
    // A command after -- runs only when asked: a stray "--" must not start a program.
    throw new UsageError(`knock: a command after -- runs only with --exec`);
  }
  const delay = intFlag(
    stringFlag(parsed, "delay", "knock"),
    "--delay",
    0,
    60_000,
    DEFAULT_DELAY_MS,
  );
  const tcpTimeout = intFlag(
    stringFlag(parsed, "tcp-timeout", "knock"),
    "--tcp-timeout",
    1,
    60_000,
    200,
  );
  const waitPortText = stringFlag(parsed, "wait-open", "knock");
  const waitTimeout =
    intFlag(stringFlag(parsed, "wait-timeout", "knock"), "--wait-timeout", 1, 3600, 10) * 1000;
  if (parsed.values.ipv4 && parsed.values.ipv6) {
    throw new UsageError("knock: -4 and -6 exclude each other");
  }
  const family = parsed.values.ipv4 ? 4 : parsed.values.ipv6 ? 6 : 0;
  const localAddress = stringFlag(parsed, "source", "knock");
  if (localAddress && !parseAddress(localAddress)) {
    throw new UsageError(`knock: --source ${JSON.stringify(localAddress)} is not an address`);
  }

  let knocks: readonly Knock[];
  let spaSent: KnockResult | undefined;
  const quiet = parsed.values.quiet === true || parsed.values.json === true;
  if (parsed.values.quiet && parsed.values.verbose) {
    throw new UsageError("knock: give -q (quiet) or -v (verbose), not both");
  }
  const progress = parsed.values.verbose === true;
  const terminal = !quiet && Deno.stderr.isTerminal();
  let memoryKeyUsed: string | undefined;
  const memoryPath = knockMemoryPath((name) => Deno.env.get(name));
  let doorName: string | null = null;
  let counter: number | null = null;
  const address = await resolve(host, family as 0 | 4 | 6);
  // [HOST:]PORT: a forward door opens a host behind the router, not the router itself.
  const waitAt = waitPortText === undefined
    ? undefined
    : /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d+)$/.exec(waitPortText);
  const waitHost = waitAt ? await resolve(waitAt[1] ?? waitAt[2], family as 0 | 4 | 6) : address;
  const waitPort = waitPortText === undefined
    ? undefined
    : intFlag(waitAt ? waitAt[3] : waitPortText, "--wait-open", 1, 65535, 0);
  // Already open (still open from an earlier knock, or not protected): knocking would only
  // use up a code, and the result would claim an open it did not cause.
  if (waitPort !== undefined && await waitForOpen(waitHost, waitPort, 500, localAddress)) {
    if (parsed.values.json) {
      console.log(JSON.stringify({
        host: address,
        door: parsed.values.door ?? null,
        counter: null,
        knocks: [],
        opened: true,
        already_open: true,
      }));
    } else if (!quiet) console.error(`port ${waitPort} is already open: not knocking`);
    return exec?.length ? await runExec(exec) : 0;
  }
  const configFile = stringFlag(parsed, "config", "knock") ??
    (ports.length === 0 ? defaultClientConfig((name) => Deno.env.get(name)) : undefined);
  if (ports.length > 0) {
    if (configFile || parsed.values.door) {
      throw new UsageError("knock: give either ports or --config with --door, not both");
    }
    const protocol: Protocol = parsed.values.udp ? "udp" : "tcp";
    knocks = ports.map((p) => {
      const k = parseKnock(p, protocol);
      if (!k) {
        throw new UsageError(
          `knock: ${JSON.stringify(p)} is not a knock (PORT, PORT:tcp or PORT:udp)`,
        );
      }
      return k;
    });
  } else {
    if (!configFile) {
      throw new UsageError(
        `knock: give ports, or --config FILE --door NAME (or keep the client config in ~/.config/sesame/client.yaml)\nRun "sesame knock --help" for usage.`,
      );
    }
    const config = await loadPrivateConfig(
      configFile,
      "refuse",
      parsed.values["insecure-permissions"] === true,
    );
    const door = findDoor(config, stringFlag(parsed, "door", "knock"), "knock");
    doorName = door.name;
    if (door.kind === "spa") {
      knocks = [];
      spaSent = await sendSpaPacket(door, address, {
        access: stringFlag(parsed, "access", "knock"),
        from: stringFlag(parsed, "from", "knock"),
        localAddress,
      });
      if (progress) console.error(`SPA packet: ${address} ${door.spa.port}/udp (${spaSent})`);
    } else if (door.kind === "static") knocks = door.sequence;
    else {
      let from;
      if (door.bindSource) {
        const text = stringFlag(parsed, "from", "knock") ?? localAddress ??
          await localAddressFor(address);
        from = parseAddress(text);
        if (!from) throw new UsageError(`knock: --from ${JSON.stringify(text)} is not an address`);
      }
      // The sequence must arrive whole inside the server's window: plan for its full duration.
      const duration = door.length * (delay + tcpTimeout) + 500;
      let start = Date.now();
      if (
        door.skew === 0 &&
        counterAt(start + duration, door.periodMs) !== counterAt(start, door.periodMs)
      ) {
        const wait = door.periodMs - (start % door.periodMs) + 50;
        await new Promise((r) => setTimeout(r, wait)); // skew 0: wait for the next period
        start = Date.now();
      }
      // Never the same code twice: the server refuses a counter at or below one used.
      memoryKeyUsed = memoryKey(
        door.name,
        `${door.fingerprint}${from ? ` ${from.text}` : ""}`,
      );
      const memory = await readKnockMemory(memoryPath);
      const next = nextCounter(
        door,
        start,
        counterForKnock(door, start, duration),
        memory[memoryKeyUsed],
      );
      if (next.wait > 0) {
        console.error(
          `knock: this period's codes of door ${door.name} were used by earlier knocks: waiting ${
            Math.ceil(next.wait / 1000)
          } s for the next period`,
        );
        await new Promise((r) => setTimeout(r, next.wait + 50));
      }
      counter = next.counter;
      knocks = (await codeForCounter(door, counter, from)).knocks;
    }
  }

  const results: KnockResult[] = [];
  for (const [i, k] of knocks.entries()) {
    if (i > 0 && delay > 0) await new Promise((r) => setTimeout(r, delay));
    const result = await sendKnock(k, { host: address, localAddress, tcpTimeoutMs: tcpTimeout });
    results.push(result);
    if (progress) {
      console.error(
        `knock ${i + 1}/${knocks.length}: ${address} ${k.port}/${k.protocol} (${result})`,
      );
    }
  }

  if (memoryKeyUsed !== undefined && counter !== null) {
    await rememberKnock(memoryPath, memoryKeyUsed, counter).catch((e) =>
      console.error(`knock: cannot remember the counter used (${(e as Error).message})`)
    );
  }
  // What it did, in one line (-q: nothing; failures always say why).
  if (!quiet) {
    console.error(summaryLine(address, doorName, counter, knocks, spaSent, waitPort !== undefined));
  }
  let opened: boolean | null = null;
  if (waitPort !== undefined) {
    const where = waitHost.includes(":") ? `[${waitHost}]:${waitPort}` : `${waitHost}:${waitPort}`;
    const waiting = terminal ? showWaiting(`waiting for ${where} to open`) : undefined;
    opened = await waitForOpen(waitHost, waitPort, waitTimeout, localAddress).finally(() =>
      waiting?.stop()
    );
    // A failure always says why (scripts and --exec wrappers see no terminal).
    if (!opened) {
      console.error(
        `knock: port ${waitPort} did not open within ${
          waitTimeout / 1000
        } s (a wrong secret or clock, a used code, the knocks did not arrive, or the server refused to open it: its log says why)`,
      );
    } else if (!quiet) console.error(`${where} is open`);
  }
  if (parsed.values.json) {
    console.log(JSON.stringify({
      host: address,
      door: doorName,
      counter,
      knocks: knocks.map((k, i) => ({ port: k.port, protocol: k.protocol, result: results[i] })),
      ...(spaSent ? { spa: true } : {}),
      opened,
      already_open: false,
    }));
  }
  if (opened === false) return 1;
  return exec?.length ? await runExec(exec) : 0;
}

/**
 * Sends one fwknop-format SPA packet to an SPA door: an access request for `access` (or the
 * door's `spa.access`) for the address `from`, or `0.0.0.0`, "the packet's source", which
 * works behind NAT and over IPv6.
 */
async function sendSpaPacket(
  door: SpaDoor,
  address: string,
  o: { access?: string; from?: string; localAddress?: string },
): Promise<KnockResult> {
  const access = o.access?.split(",").map((a) => a.trim()) ??
    door.spa.access.map((a) => `${a.protocol}/${a.port}`);
  if (access.length === 0 || access.some((a) => !/^(tcp|udp)\/\d{1,5}$/.test(a))) {
    throw new UsageError(
      `knock: door ${door.name} is an SPA door: give --access tcp/PORT (or spa.access in the config)`,
    );
  }
  const from = o.from === undefined ? "0.0.0.0" : parseAddress(o.from)?.text;
  if (!from || from.includes(":")) {
    throw new UsageError(
      `knock: --from must be an IPv4 address (fwknop's message holds IPv4 only; without --from the server opens for the packet's source)`,
    );
  }
  const wire = encodeSpa({
    user: "sesame",
    timestamp: Date.now() / 1000,
    type: 1,
    message: `${from},${access.join(",")}`,
  }, door.spa.keys);
  return await sendDatagram(door.spa.port, new TextEncoder().encode(wire), {
    host: address,
    localAddress: o.localAddress,
  });
}

/**
 * The one line a knock prints: what was sent where. Whether a door opened is the server's
 * to decide (a wrong code is accepted by the pool's ports like a right one): --wait-open
 * tells.
 */
function summaryLine(
  address: string,
  door: string | null,
  counter: number | null,
  knocks: readonly Knock[],
  spa: KnockResult | undefined,
  waiting: boolean,
): string {
  const hint = waiting ? "" : "; --wait-open PORT shows whether the door opened";
  if (spa) return `sent door ${door}'s SPA packet to ${address}${hint}`;
  const protocols = [...new Set(knocks.map((k) => k.protocol.toUpperCase()))].join("+");
  const code = counter === null ? "" : ` (code ${counter})`;
  const what = door ? `door ${door}` : "a static sequence";
  return `knocked ${what} on ${address}: ${knocks.length} ${protocols} knocks sent${code}${hint}`;
}

/** A line on the terminal counting the seconds of a wait, erased when it ends. */
function showWaiting(what: string): { stop(): void } {
  const started = Date.now();
  const write = (text: string) => {
    try {
      Deno.stderr.writeSync(new TextEncoder().encode(text));
    } catch { /* the terminal went away */ }
  };
  const draw = () => write(`\r${what}… ${Math.round((Date.now() - started) / 1000)} s`);
  draw();
  const timer = setInterval(draw, 1000);
  return {
    stop() {
      clearInterval(timer);
      write("\r\x1b[K");
    },
  };
}

/** Runs the --exec program with the terminal; its exit code is the knock's. */
async function runExec(exec: string[]): Promise<number> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(exec[0], {
      args: exec.slice(1),
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such program" : (e as Error).message;
    throw new UsageError(`knock: --exec cannot start ${JSON.stringify(exec[0])}: ${why}`);
  }
  return (await child.status).code;
}
