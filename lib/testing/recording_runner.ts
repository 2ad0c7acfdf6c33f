/**
 * The recording twin of the command runner: what would have run, in order, and nothing run.
 * @module
 */
import type { CommandResult, CommandRunner, RunOptions, Session } from "../actions/runner.ts";

/**
 * Records every command instead of running it; each ends with `code`.
 *
 * @example
 * ```ts
 * import { RecordingRunner } from "./recording_runner.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const runner = new RecordingRunner();
 * assertEquals((await runner.run(["/sbin/allow", "192.0.2.7"], { timeoutMs: 1000 })).code, 0);
 * assertEquals(runner.runs, [["/sbin/allow", "192.0.2.7"]]);
 * ```
 */
export class RecordingRunner implements CommandRunner {
  /** Every argv run, in order. */
  readonly runs: string[][] = [];
  /** What each was fed on stdin. */
  readonly inputs: (string | undefined)[] = [];
  readonly #code: number;

  /** @param code the exit code every command ends with. @default 0 */
  constructor(code = 0) {
    this.#code = code;
  }

  /** Records `argv`; resolves at once. */
  run(argv: readonly string[], options: RunOptions): Promise<CommandResult> {
    this.runs.push([...argv]);
    this.inputs.push(options.input);
    return Promise.resolve({ code: this.#code, timedOut: false, error: "" });
  }

  /** Refused: a recording runner starts no long-lived process. */
  spawn(_argv: readonly string[]): Session {
    throw new Error("RecordingRunner starts no sessions");
  }

  /** Nothing to release. */
  close(): void {}
}
