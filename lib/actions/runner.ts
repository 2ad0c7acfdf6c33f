/**
 * Runs action commands (argv, never a shell) off the knock path. Spawning blocks the
 * event loop for ~2 ms in Deno, so spawns happen in a Web Worker: the main thread keeps
 * accepting knocks while a burst of opens is being run.
 * @module
 */

/** How a command ended. */
export interface CommandResult {
  /** Exit code; -1 when it could not be started or was killed. */
  readonly code: number;
  /** True when it ran past its time limit and was killed. */
  readonly timedOut: boolean;
  /** The first 2 KiB of its stderr, or why it could not start. */
  readonly error: string;
  /** Its stdout (the first 1 MiB), when asked for with `capture`. */
  readonly output?: string;
}

/** A long-lived process fed through stdin (the nft session). */
export interface Session {
  /** Its standard input. */
  readonly stdin: WritableStream<Uint8Array>;
  /** Its standard output. */
  readonly stdout: ReadableStream<Uint8Array>;
  /** Its standard error. */
  readonly stderr: ReadableStream<Uint8Array>;
  /** Resolves when it has ended. */
  readonly status: Promise<unknown>;
  /** Sends it a signal. */
  kill(signal: Deno.Signal): void;
}

/** Options for {@link CommandRunner.run}. */
export interface RunOptions {
  /** Killed after this many ms. */
  readonly timeoutMs: number;
  /** Fed on stdin. @default none (stdin is /dev/null) */
  readonly input?: string;
  /** Never refused for a full queue (a close, a check of the rules). @default false */
  readonly essential?: boolean;
  /** Its stdout comes back in `output`. @default false */
  readonly capture?: boolean;
}

/** Something that runs argv with a time limit, and starts long-lived sessions. */
export interface CommandRunner {
  /**
   * Runs `argv` (argv[0] an absolute path); resolves when it ends or is killed. It never
   * rejects: a command that cannot start resolves with code -1 and why.
   */
  run(argv: readonly string[], options: RunOptions): Promise<CommandResult>;
  /** Starts `argv` (argv[0] an absolute path) as a long-lived session with piped stdio. */
  spawn(argv: readonly string[]): Session;
  /** Stops the runner; commands in flight are left to finish on their own. */
  close(): void;
}

/**
 * Starts a session in this thread, with the same clean environment as commands, and
 * HOME=/dev/null: `nft -i` keeps a line history in $HOME/.nft.history (without HOME, in
 * /.nft.history), reads all of it at start, looks up its last entry by walking the whole
 * list on every line, and writes it all back at exit. For a daemon that sends a line per
 * opening, the file grew without bound (13 MB here) and each opening slowed with it
 * (1.2 ms became 3 ms). A history under /dev/null can be neither read nor written.
 */
export function spawnSession(argv: readonly string[]): Session {
  return new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: { PATH: CLEAN_PATH, HOME: NO_HOME },
  }).spawn();
}

/** A HOME under which no file can exist. */
const NO_HOME = "/dev/null";

/**
 * Runs one command in this thread. The worker uses it; tests and tools may too.
 *
 * @example
 * ```ts
 * import { runCommand } from "./runner.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const result = await runCommand(["/bin/sh", "-c", "echo no >&2; exit 3"], { timeoutMs: 1000 });
 * assertEquals(result.code, 3);
 * assertEquals(result.error, "no");
 * ```
 */
export async function runCommand(
  argv: readonly string[],
  { timeoutMs, input, capture = false }: RunOptions,
): Promise<CommandResult> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: input === undefined ? "null" : "piped",
      stdout: capture ? "piped" : "null",
      stderr: "piped",
      signal,
      clearEnv: true,
      env: { PATH: CLEAN_PATH },
    }).spawn();
    if (input !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(input)).catch(() => {}); // it may exit without reading
      await writer.close().catch(() => {});
    }
    const [status, stderr, stdout] = await Promise.all([
      child.status,
      new Response(child.stderr).arrayBuffer(),
      capture ? new Response(child.stdout).arrayBuffer() : undefined,
    ]);
    const error = new TextDecoder().decode(stderr.slice(0, 2048)).trim();
    const output = stdout && new TextDecoder().decode(stdout.slice(0, 1 << 20));
    return {
      code: signal.aborted ? -1 : status.code,
      timedOut: signal.aborted,
      error,
      ...(output === undefined ? {} : { output }),
    };
  } catch (e) {
    return { code: -1, timedOut: signal.aborted, error: (e as Error).message };
  }
}

/** The only environment commands get: a PATH for the tools they call themselves. */
const CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

interface Pending {
  resolve: (r: CommandResult) => void;
}

/**
 * A {@link CommandRunner} backed by a Web Worker.
 *
 * @example
 * ```ts
 * import { WorkerRunner } from "./runner.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const runner = new WorkerRunner();
 * assertEquals((await runner.run(["/bin/true"], { timeoutMs: 5000 })).code, 0);
 * runner.close();
 * ```
 */
export class WorkerRunner implements CommandRunner {
  #worker: Worker | undefined;
  readonly #maxQueued: number;
  readonly #pending = new Map<number, Pending>();
  #next = 0;

  #start(): Worker {
    const worker = new Worker(workerUrl(import.meta.url), { type: "module" });
    worker.onmessage = (event: MessageEvent<{ id: number; result: CommandResult }>) => {
      const pending = this.#pending.get(event.data.id);
      this.#pending.delete(event.data.id);
      pending?.resolve(event.data.result);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      for (const p of this.#pending.values()) {
        p.resolve({ code: -1, timedOut: false, error: `runner failed: ${event.message}` });
      }
      this.#pending.clear();
      this.#worker?.terminate();
      this.#worker = undefined; // started again on the next command
    };
    return worker;
  }

  /** Creates a runner. @param maxQueued most commands waiting or running at once; more are refused. */
  constructor(maxQueued = 1000) {
    this.#maxQueued = maxQueued;
  }

  /** Starts the worker now, so the first door does not wait for it (~30 ms). */
  warm(): void {
    this.#worker ??= this.#start();
  }

  run(argv: readonly string[], options: RunOptions): Promise<CommandResult> {
    // A flood of openings must not queue commands without bound: refuse opens beyond the
    // cap (the caller logs it, and a door whose command did not run stays shut). Closes are
    // never refused: a door must not stay open because the queue was full.
    if (!options.essential && this.#pending.size >= this.#maxQueued) {
      return Promise.resolve({
        code: -1,
        timedOut: false,
        error: `more than ${this.#maxQueued} commands waiting: refused`,
      });
    }
    this.#worker ??= this.#start();
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#pending.set(id, { resolve });
      const { timeoutMs, input, capture } = options;
      this.#worker!.postMessage({ id, argv: [...argv], options: { timeoutMs, input, capture } });
    });
  }

  spawn(argv: readonly string[]): Session {
    return spawnSession(argv);
  }

  close(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    for (const p of this.#pending.values()) {
      p.resolve({ code: -1, timedOut: false, error: "runner closed" });
    }
    this.#pending.clear();
  }
}

/**
 * The worker's module beside this one: `runner_worker.ts` from source, `runner_worker.js`
 * when this module runs from a bundle (the package bundles the worker as a second entry,
 * and a bundle's `import.meta.url` is the bundle's own file).
 */
export function workerUrl(self: string): URL {
  return new URL(self.endsWith(".js") ? "./runner_worker.js" : "./runner_worker.ts", self);
}
