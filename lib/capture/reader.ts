/**
 * The capture intake's reader: `tcpdump` reading the kernel's NFLOG group and writing
 * pcap to a pipe (Deno cannot open a netlink socket without FFI; tcpdump kept 20 002 of
 * 20 002 SYNs at ~20 000/s here), parsed as it arrives. Supervised: a reader that exits
 * is logged at error and started again (1 s, 2 s … 30 s apart; a reader that ran a
 * minute starts the back-off over). While none runs no knock is heard, so nothing opens:
 * it fails closed.
 * @module
 */
import type { Counters } from "../counters.ts";
import { logger } from "../log.ts";
import { type CapturedPacket, PcapFormatError, PcapParser } from "./pcap.ts";

const log = logger("capture");

/** Options for {@link CaptureReader}. */
export interface CaptureReaderOptions {
  /** The NFLOG group the capture rules log to. */
  readonly group: number;
  /** Gets every knock, in the order the kernel logged them. */
  readonly onPacket: (packet: CapturedPacket) => void;
  /** The program. @default "tcpdump" */
  readonly program?: string;
  /** Where packets, skipped records and restarts are counted too. @default none */
  readonly counters?: Counters;
}

/** What the reader counted. */
export interface CaptureStats {
  /** Knocks parsed. */
  packets: number;
  /** Records that held no knock (skipped). */
  skipped: number;
  /** Times the reader was started again after it stopped. */
  restarts: number;
}

/**
 * Ends readers of `group` left in this network namespace by a daemon that was killed
 * (outside systemd, which ends them with the unit): one would hold the group, and the new
 * reader could not bind it. Readers in other namespaces are theirs.
 */
async function killStaleReaders(group: number): Promise<void> {
  // pgrep, not /proc: Deno reads /proc only with every permission granted.
  const found = await new Deno.Command("pgrep", {
    args: ["--ns", String(Deno.pid), "--nslist", "net", "-f", `tcpdump -i nflog:${group} `],
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  const pids = new TextDecoder().decode(found?.stdout ?? new Uint8Array()).split("\n")
    .map(Number).filter((pid) => pid > 0 && pid !== Deno.pid);
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
      log.warning("ended a knock reader (pid {pid}) left by an earlier sesame", { pid });
    } catch { /* gone, or not ours */ }
  }
}

/** Longest pause between restarts, ms. */
const MAX_BACKOFF_MS = 30_000;

/** Runs and supervises tcpdump on one NFLOG group. */
export class CaptureReader {
  readonly #options: CaptureReaderOptions;
  #child: Deno.ChildProcess | undefined;
  #stopped = false;
  #backoffMs = 1000;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  /** What was read so far. */
  readonly stats: CaptureStats = { packets: 0, skipped: 0, restarts: 0 };

  /** @param options the group and where knocks go. */
  constructor(options: CaptureReaderOptions) {
    this.#options = options;
  }

  /** Starts reading; resolves once tcpdump listens on the group (or failed to). */
  async start(): Promise<void> {
    await killStaleReaders(this.#options.group);
    return new Promise((ready) => this.#spawn(ready));
  }

  #spawn(ready?: () => void): void {
    if (this.#stopped) return ready?.();
    const program = this.#options.program ?? "tcpdump";
    // tcpdump opens the NFLOG socket as root, then drops to its own user (Debian's
    // `tcpdump`; the unit grants CAP_SETUID and CAP_SETGID for that): the process that
    // parses what the network sends runs unprivileged. -U: each packet written at once.
    // -s 2048: knocks and SPA packets whole.
    const args = [
      "-i",
      `nflog:${this.#options.group}`,
      "-U",
      "-w",
      "-",
      "-s",
      "2048",
      // An 8 MiB socket buffer: a burst the reader is slow to drain waits there, not lost.
      "-B",
      "8192",
    ];
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(program, { args, stdin: "null", stdout: "piped", stderr: "piped" })
        .spawn();
    } catch (e) {
      log.error("cannot start {program} to read knocks: {error}; no knock is heard", {
        program,
        error: (e as Error).message,
      });
      ready?.();
      return this.#again();
    }
    this.#child = child;
    const started = Date.now();
    let listening = false;
    const stderr = (async () => {
      let text = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        text += chunk;
        let nl;
        while ((nl = text.indexOf("\n")) >= 0) {
          const line = text.slice(0, nl).trim();
          text = text.slice(nl + 1);
          if (line.startsWith("tcpdump: listening on")) {
            listening = true;
            ready?.();
          } else if (line !== "" && !/packets (captured|received|dropped)/.test(line)) {
            log.warning("{program}: {line}", { program, line });
          }
        }
      }
    })().catch(() => {});
    const parser = new PcapParser();
    const stdout = (async () => {
      for await (const chunk of child.stdout) {
        const counters = this.#options.counters;
        for (const packet of parser.push(chunk)) {
          this.stats.packets++;
          if (counters) counters.captured++;
          this.#options.onPacket(packet);
        }
        if (counters) counters.captureSkipped += parser.skipped - this.stats.skipped;
        this.stats.skipped = parser.skipped;
      }
    })().catch((e) => {
      if (e instanceof PcapFormatError) {
        log.error("{program} wrote what sesame cannot read ({error}): restarting it", {
          program,
          error: e.message,
        });
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }
    });
    this.#running = (async () => {
      const status = await child.status;
      await Promise.all([stdout, stderr]);
      this.#child = undefined;
      if (!listening) ready?.();
      if (this.#stopped) return;
      log.error(
        "the knock reader ({program}) stopped (exit {code}{signal}): no knock is heard until it runs again",
        { program, code: status.code, signal: status.signal ? `, ${status.signal}` : "" },
      );
      if (Date.now() - started > 60_000) this.#backoffMs = 1000;
      this.#again();
    })();
  }

  #again(): void {
    if (this.#stopped) return;
    const wait = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.stats.restarts++;
      if (this.#options.counters) this.#options.counters.captureRestarts++;
      this.#spawn(() => log.info("the knock reader runs again"));
    }, wait);
  }

  /**
   * Stops the reader for good. tcpdump runs as its own user once started: where sesame
   * may not signal it (no CAP_KILL), closing the pipe ends it at its next packet, and
   * systemd ends it with the unit.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    try {
      this.#child?.kill("SIGTERM");
    } catch { /* gone, or not ours to signal */ }
    await this.#child?.stdout.cancel().catch(() => {});
    await this.#running;
  }
}
