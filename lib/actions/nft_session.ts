/**
 * One long-lived `nft -i` process fed through stdin: an opening costs a line, not a
 * process (~0.3 ms instead of ~3.4 ms here). Each line is one transaction (commands joined
 * by ";"). To learn how a line ended, a fence follows it: a line nft cannot parse
 * ({@link FENCE}), whose error nft writes to stderr after whatever error the transaction
 * had, on the same stream, so the order is certain. A line succeeded when nothing but
 * the fence's error came before the fence. (nft's echo, `-e`, would say so on stdout, but
 * to echo it reads every element of every set first: 50 ms a line with 18 000 doors
 * open, against 0.4 ms without.) A dead or stuck process is replaced on the next line.
 * The process is started through the injected runner, like every other command. Callers
 * send one line at a time (the nft backend's batcher guarantees it).
 * @module
 */
import { FirewallError } from "../errors.ts";
import type { CommandRunner, Session } from "./runner.ts";

const REPLY_TIMEOUT_MS = 5000;
/**
 * Sent after every transaction: a syntax error (a colon where nft expects a name), so
 * nothing reaches the kernel and nft needs no cache for it. No transaction line holds
 * this text (nft names cannot hold a colon), so its echo in the error marks the end.
 */
const FENCE = "sesame:fence";
const FENCE_ECHO = `\n${FENCE}\n`;

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
  /** What nft wrote to stderr since the last fence. */
  #stderr = "";

  /** @param runner starts the process. @param nftPath the nft binary. */
  constructor(runner: CommandRunner, nftPath: string) {
    this.#runner = runner;
    this.#nft = nftPath;
  }

  #start(): void {
    const child = this.#runner.spawn([this.#nft, "-i"]);
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#stderr = "";
    this.#read(child.stdout, () => {}); // nothing is asked of it: drained
    this.#read(child.stderr, (text) => {
      if (this.#child !== child) return;
      this.#stderr += text;
      this.#fenced();
    });
    child.status.then(() => {
      if (this.#child === child) this.#reset(new FirewallError("nft session ended"));
    });
  }

  /** Settles the line in flight once its fence's error has arrived. */
  #fenced(): void {
    // The caret line under the previous fence's echo may arrive late: it is no error.
    this.#stderr = this.#stderr.replace(/^[ \t]*[\^~]+[ \t]*\n/, "");
    const echo = this.#stderr.indexOf(FENCE_ECHO);
    if (echo < 0) return;
    // The fence's own error is the line before its echo; the transaction's came before it.
    const before = this.#stderr.slice(0, echo);
    const own = before.lastIndexOf("Error:");
    const transaction = (own >= 0 ? before.slice(0, own) : before).trim();
    this.#stderr = this.#stderr.slice(echo + FENCE_ECHO.length);
    this.#settle(
      transaction.includes("Error:")
        ? new FirewallError(`nft: ${transaction.split("\n")[0]}`)
        : undefined,
    );
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
    clearTimeout(waiting.timer);
    if (error) waiting.reject(error);
    else waiting.resolve();
  }

  #reset(error: Error): void {
    const child = this.#child;
    this.#child = undefined;
    this.#writer = undefined;
    this.#stderr = "";
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
      const text = `${commands.join(" ; ")}\n${FENCE}\n`;
      this.#writer!.write(new TextEncoder().encode(text)).catch((e) =>
        this.#reset(new FirewallError(`nft session: ${(e as Error).message}`, { cause: e }))
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
