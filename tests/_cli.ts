/** Runs the real CLI in a subprocess, under the same permission set as `deno task sesame`. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const ROOT = new URL("../", import.meta.url).pathname;

/**
 * The V8 flags the compiled binary runs with, from deno.json's compile task (a young
 * generation of 1 MiB semi-spaces: peak RSS under load ~40 MiB lower, CPU the same).
 */
export const V8_FLAGS: string[] = [
  ...(/--v8-flags=\S+/.exec(
    JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks.compile,
  ) ?? []),
];

/** `deno run` as the binary runs: the compile task's permission set (-P) and V8 flags. */
export const DENO_RUN: string[] = ["run", "-q", "-P", ...V8_FLAGS, `--config=${ROOT}deno.json`];

/**
 * A client memory of used counters (knock_memory.ts) of its own for every client run, so
 * tests do not see each other's knocks; a test of the memory passes XDG_STATE_HOME itself.
 */
const CLIENT_STATE = Deno.makeTempDirSync({ prefix: "sesame-client-state-" });
let clients = 0;
export function freshClientState(): string {
  return `${CLIENT_STATE}/${clients++}`;
}

export async function runCli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...DENO_RUN, `${ROOT}cli.ts`, ...args],
    cwd: options.cwd ?? ROOT,
    env: { XDG_STATE_HOME: freshClientState(), ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A temp dir removed by the returned disposer. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "sesame-test-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** Writes a file only its owner can read, as files holding secrets must be. */
export function writePrivate(path: string, text: string): Promise<void> {
  return Deno.writeTextFile(path, text, { mode: 0o600 });
}

/** Starts one of the project's scripts (tests/_flood.ts, ...) under the project's permission set. */
export function spawnScript(file: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [...DENO_RUN, `${ROOT}${file}`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}
