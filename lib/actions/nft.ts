/**
 * The nftables backend. sesame owns one table, `inet sesame`: per door a set of IPv4 and
 * a set of IPv6 sources with per-element timeouts, and one input chain that drops the
 * door's protected ports unless the source is in the door's set. The kernel removes an
 * element when its time is up, daemon or no daemon; established connections continue.
 * The table stays when sesame stops, so the ports stay protected.
 * @module
 */
import { parseAddress } from "../address.ts";
import type { Door } from "../config/types.ts";
import { nftSetBase } from "../config/validate.ts";
import type { OpenRecord } from "../state.ts";
import type { CommandRunner } from "./runner.ts";
import { type Firewall, FirewallError } from "./firewall.ts";
import { NftSession } from "./nft_session.ts";

/** Where nft lives on Debian and most distributions. */
export const NFT_PATH = "/usr/sbin/nft";
const TIMEOUT_MS = 10_000;
/** Most openings sent as one nft -i line; a larger backlog goes to nft -f at once. */
const SESSION_CHUNK = 64;
/** nft takes element timeouts down to 1 s in practice; shorter ones are rounded up. */
const MIN_TIMEOUT_MS = 1000;

/** The door's set names. */
function sets(door: string): { v4: string; v6: string } {
  const base = nftSetBase(door);
  return { v4: `${base}_v4`, v6: `${base}_v6` };
}

/** One element line (add, delete, add: creates or refreshes the timeout atomically, on every kernel). */
function elementLines(record: OpenRecord, now: number): string[] {
  const address = parseAddress(record.ip);
  if (!address || address.text !== record.ip) {
    throw new TypeError(`not a canonical address: ${JSON.stringify(record.ip)}`);
  }
  const set = sets(record.door)[address.family === 4 ? "v4" : "v6"];
  const timeout = Math.max(MIN_TIMEOUT_MS, Math.ceil(record.until - now));
  const target = `inet sesame ${set} { ${address.text}`;
  return [
    `add element ${target} }`,
    `delete element ${target} }`,
    `add element ${target} timeout ${timeout}ms }`,
  ];
}

/**
 * The whole table as an `nft -f` script: created if missing, deleted and rebuilt in the
 * same transaction (all or nothing), with the open `records` put back. Pure.
 *
 * @example
 * ```ts ignore
 * import { nftRuleset } from "./nft.ts";
 * console.log(nftRuleset(config.doors, [], Date.now()));
 * ```
 */
export function nftRuleset(
  doors: readonly Door[],
  records: readonly OpenRecord[],
  now: number,
): string {
  const guarded = doors.filter((d) => d.open?.nft);
  const lines = [
    "# sesame's table: generated, replaced as a whole on every start and reload",
    "table inet sesame {}",
    "delete table inet sesame",
  ];
  if (guarded.length === 0) return lines.join("\n") + "\n";
  lines.push(
    "table inet sesame {",
    "  # sesame checks its long-lived nft session with this set; it allows nothing",
    "  set session_probe { type ipv4_addr; flags timeout; }",
  );
  for (const door of guarded) {
    const { v4, v6 } = sets(door.name);
    lines.push(
      `  set ${v4} { type ipv4_addr; flags timeout; }`,
      `  set ${v6} { type ipv6_addr; flags timeout; }`,
    );
  }
  lines.push(
    "  chain input {",
    "    type filter hook input priority filter - 10; policy accept;",
    "    # connections opened while a door was open live on after it closes",
    "    ct state established,related accept",
  );
  for (const door of guarded) {
    const { ports, protocol } = door.open!.nft!;
    const { v4, v6 } = sets(door.name);
    const match = `${protocol} dport { ${ports.join(", ")} }`;
    lines.push(
      `    # door ${door.name}`,
      `    ${match} ip saddr @${v4} accept`,
      `    ${match} ip6 saddr @${v6} accept`,
      `    ${match} drop`,
    );
  }
  lines.push("  }", "}");
  const names = new Set(guarded.map((d) => d.name));
  for (const record of records) {
    if (names.has(record.door) && record.until > now) lines.push(...elementLines(record, now));
  }
  return lines.join("\n") + "\n";
}

/**
 * nftables through `nft -f -`. Openings are batched: while one nft process runs, the
 * next openings queue and go into the next transaction, so a burst costs a few
 * processes, not one per knock.
 *
 * @example
 * ```ts ignore
 * const nft = new NftFirewall(new WorkerRunner());
 * await nft.apply(config.doors, []);
 * await nft.open({ door: "ssh", ip: "192.0.2.7", until: Date.now() + 30_000, close: null });
 * ```
 */
export class NftFirewall implements Firewall {
  readonly #runner: CommandRunner;
  readonly #nft: string;
  readonly #now: () => number;
  #queue: { record: OpenRecord; resolve: () => void; reject: (e: Error) => void }[] = [];
  #running = false;
  readonly #session: NftSession | undefined;
  /** Transactions run so far (for the benchmark). */
  batches = 0;

  /**
   * @param options.mode `session` (default): openings go to one long-lived `nft -i`, and a
   *   backlog of more than 64 to one `nft -f -`; `batch`: every batch runs its own `nft -f -`.
   */
  constructor(
    runner: CommandRunner,
    options: { nftPath?: string; now?: () => number; mode?: "session" | "batch" } = {},
  ) {
    this.#runner = runner;
    this.#nft = options.nftPath ?? NFT_PATH;
    this.#now = options.now ?? Date.now;
    this.#session = options.mode === "batch" ? undefined : new NftSession(this.#nft);
  }

  /** Ends the long-lived nft process, if any. */
  async shutdown(): Promise<void> {
    await this.#session?.close();
  }

  async apply(doors: readonly Door[], records: readonly OpenRecord[]): Promise<void> {
    await this.#run(nftRuleset(doors, records, this.#now()));
    // Start the session now (a no-op transaction), so the first opening does not pay for it.
    if (this.#session && doors.some((d) => d.open?.nft)) {
      await this.#session.run(["add element inet sesame session_probe { 127.0.0.1 timeout 1s }"]);
    }
  }

  open(record: OpenRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ record: { ...record }, resolve, reject });
      if (!this.#running) void this.#drain();
    });
  }

  close(_record: OpenRecord): Promise<void> {
    return Promise.resolve(); // the kernel expires the element
  }

  async #drain(): Promise<void> {
    this.#running = true;
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      const now = this.#now();
      const good: typeof batch = [];
      const lines: string[] = [];
      for (const item of batch) {
        try {
          lines.push(...elementLines(item.record, now));
          good.push(item);
        } catch (e) {
          item.reject(e as Error);
        }
      }
      // Few openings: one line to the running session (lowest latency). A backlog: one
      // nft -f transaction for all of it (highest throughput; measured in BENCHMARKS.md).
      if (this.#session && good.length > 0 && good.length <= SESSION_CHUNK) {
        try {
          await this.#session.run(lines);
          this.batches++;
          for (const item of good) item.resolve();
        } catch (e) {
          for (const item of good) item.reject(e as Error);
        }
        continue;
      }
      try {
        if (lines.length > 0) await this.#run(lines.join("\n") + "\n");
        for (const item of good) item.resolve();
      } catch (e) {
        for (const item of good) item.reject(e as Error);
      }
    }
    this.#running = false;
  }

  async #run(script: string): Promise<void> {
    this.batches++;
    const result = await this.#runner.run([this.#nft, "-f", "-"], TIMEOUT_MS, script);
    if (result.code !== 0) {
      throw new FirewallError(
        `nft failed (${result.timedOut ? "timed out" : `exit ${result.code}`}): ${result.error}`,
      );
    }
  }
}
