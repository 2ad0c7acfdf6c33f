/** Runs `sesame listen` as a real process and reads its log as it comes. */
import { DENO_RUN, ROOT } from "./_cli.ts";

export interface ListenProcess extends AsyncDisposable {
  child: Deno.ChildProcess;
  /** All of stderr so far. */
  log(): string;
  /** Resolves when stderr matches `pattern` (counting from the start), or rejects after `ms`. */
  waitForLog(pattern: RegExp, ms?: number): Promise<void>;
  /** Sends a signal. */
  kill(signal: Deno.Signal): void;
}

/**
 * Starts `sesame listen` with `args`; `wrap` runs it through another command first (e.g.
 * `unshare -m ...`), which must exec it.
 */
export function spawnListen(args: string[], wrap: string[] = []): ListenProcess {
  const argv = [
    Deno.execPath(),
    ...[...DENO_RUN, `${ROOT}cli.ts`, "listen", ...args],
  ];
  const [program, ...rest] = [...wrap, ...argv];
  const child = new Deno.Command(program, {
    args: rest,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) text += decoder.decode(chunk, { stream: true });
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    child,
    log: () => text,
    async waitForLog(pattern, ms = 5000) {
      const deadline = Date.now() + ms;
      while (!pattern.test(text)) {
        if (Date.now() > deadline) {
          throw new Error(`no log line matching ${pattern} within ${ms} ms; log:\n${text}`);
        }
        if (exited) {
          throw new Error(`sesame listen exited before logging ${pattern}; log:\n${text}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    kill(signal) {
      if (!exited) child.kill(signal);
    },
    async [Symbol.asyncDispose]() {
      if (!exited) child.kill("SIGKILL");
      await status;
      await reading;
    },
  };
}

/** Waits until `check()` is true, polling; false after `ms`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  ms = 3000,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return await check();
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
