/**
 * One long-lived `nft -e -i` process fed through stdin: an opening costs a line, not a
 * process (~0.1 ms instead of ~3.4 ms here). Each line is one transaction (commands joined
 * by ";"); nft's echo ends a committed line with "# new generation N" on stdout, and a
 * failed one prints "Error:" on stderr, so one line in flight at a time is enough to tell
 * which line failed. A dead or stuck process is replaced on the next line. The process is
 * started through the injected runner, like every other command. Callers send one line
 * at a time (the nft backend's batcher guarantees it).
 * @module
 */
import { FirewallError } from "../errors.ts";
import type { CommandRunner, Session } from "./runner.ts";

const REPLY_TIMEOUT_MS = 5000;

/**
 * A long-lived nft session.
 *
 * @example
 * ```ts ignore
 * // needs root and nft
 * import { NftSession } from "./nft_session.ts";
 * import { WorkerRunner } from "./runner.ts";
 * const session = new NftSession(new WorkerRunner(), "/usr/sbin/nft");
 * await session.run(["add element inet sesame door_ssh_v4 { 192.0.2.7 timeout 30000ms }"]);
 * await session.close();
 * ```
 */
export class NftSession {
  readonly #runner: CommandRunner;
  readonly #nft: string;
  #child: Session | undefined;
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #waiting: {
    resolve: () => void;
    reject: (e: Error) => void;
    timer: ReturnType<typeof setTimeout>;
  } | undefined;
  #stderr = "";

  /** @param runner starts the process. @param nftPath the nft binary. */
  constructor(runner: CommandRunner, nftPath: string) {
    this.#runner = runner;
    this.#nft = nftPath;
  }

  #start(): void {
    const child = this.#runner.spawn([this.#nft, "-e", "-i"]);
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#read(child.stdout, (text) => {
      if (/^# new generation/m.test(text)) this.#settle();
    });
    this.#read(child.stderr, (text) => {
      this.#stderr += text;
      if (/Error:/.test(this.#stderr)) {
        // The error message spans a few lines; give the rest a moment to arrive.
        setTimeout(
          () => this.#settle(new FirewallError(`nft: ${this.#stderr.trim().split("\n")[0]}`)),
          5,
        );
      }
    });
    child.status.then(() => {
      if (this.#child === child) this.#reset(new FirewallError("nft session ended"));
    });
  }

  #read(stream: ReadableStream<Uint8Array>, onText: (text: string) => void): void {
    (async () => {
      const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        onText(value!);
      }
    })();
  }

  #settle(error?: Error): void {
    const waiting = this.#waiting;
    if (!waiting) return;
    this.#waiting = undefined;
    this.#stderr = "";
    clearTimeout(waiting.timer);
    if (error) waiting.reject(error);
    else waiting.resolve();
  }

  #reset(error: Error): void {
    const child = this.#child;
    this.#child = undefined;
    this.#writer = undefined;
    this.#settle(error);
    try {
      child?.kill("SIGKILL");
    } catch { /* gone */ }
  }

  /** Runs one transaction: `commands` joined by ";" on one line. Resolves once committed. */
  run(commands: readonly string[]): Promise<void> {
    if (this.#waiting) throw new TypeError("NftSession.run: one line at a time");
    if (!this.#child) this.#start();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.#reset(new FirewallError("nft session did not answer")),
        REPLY_TIMEOUT_MS,
      );
      this.#waiting = { resolve, reject, timer };
      this.#stderr = "";
      this.#writer!.write(new TextEncoder().encode(commands.join(" ; ") + "\n")).catch((e) =>
        this.#reset(new FirewallError(`nft session: ${(e as Error).message}`))
      );
    });
  }

  /** Ends the process. */
  async close(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    await this.#writer?.close().catch(() => {});
    this.#settle(new FirewallError("nft session closed"));
    await child.status;
  }
}
