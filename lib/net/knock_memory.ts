/**
 * The client's memory of the counters it used: a server refuses a code at or below the
 * highest one used, so the client never sends the same (door, secret, counter) twice, to
 * any address: one server has several (IPv4 and IPv6, a name and its address), and the
 * code used on one of them is used on all. It takes the next counter still inside the
 * server's window. A small JSON file
 * under the user's state directory ($XDG_STATE_HOME/sesame, or ~/.local/state/sesame).
 * @module
 */

/** Where the memory lives for this user; undefined when no home is known. */
export function knockMemoryPath(env: (name: string) => string | undefined): string | undefined {
  const base = env("XDG_STATE_HOME") || (env("HOME") ? `${env("HOME")}/.local/state` : undefined);
  return base ? `${base}/sesame/knocks.json` : undefined;
}

/** The counters used, by `door secret-fingerprint`. */
export type KnockMemory = Record<string, number>;

/**
 * The key of one door and secret, whatever address it was knocked at (a rotated secret
 * starts afresh).
 */
export function memoryKey(door: string, fingerprint: string): string {
  return `${door} ${fingerprint}`;
}

/** Reads the memory; an unreadable or broken file is an empty memory. */
export async function readKnockMemory(path: string | undefined): Promise<KnockMemory> {
  if (!path) return {};
  try {
    const data = JSON.parse(await Deno.readTextFile(path));
    if (typeof data !== "object" || data === null || Array.isArray(data)) return {};
    // Only whole counters: anything else in a damaged or edited file is forgotten.
    return Object.fromEntries(
      Object.entries(data).filter(([, v]) => Number.isSafeInteger(v) && (v as number) >= 0),
    ) as KnockMemory;
  } catch {
    return {};
  }
}

/** Records that `counter` was used under `key` (keeps the highest), pruning old entries. */
export async function rememberKnock(
  path: string | undefined,
  key: string,
  counter: number,
): Promise<void> {
  if (!path) return;
  const memory = await readKnockMemory(path);
  memory[key] = Math.max(memory[key] ?? -Infinity, counter);
  const entries = Object.entries(memory).sort((a, b) => b[1] - a[1]).slice(0, 200);
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  const temp = `${path}.tmp`;
  await Deno.writeTextFile(temp, JSON.stringify(Object.fromEntries(entries)) + "\n", {
    mode: 0o600,
  });
  await Deno.rename(temp, path);
}

/**
 * The counter to knock with: the one that keeps the sequence inside the server's window
 * (`planned`), or the next after the last used when that one is higher. `wait` ms when even
 * that is beyond the window now (T + skew): the next period brings it in.
 *
 * @example
 * ```ts
 * import { nextCounter } from "./knock_memory.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const door = { periodMs: 30_000, skew: 1 };
 * const now = 1000 * 30_000 + 5_000; // counter 1000, window 999…1001
 * assertEquals(nextCounter(door, now, 1000, undefined), { counter: 1000, wait: 0 });
 * assertEquals(nextCounter(door, now, 1000, 1000), { counter: 1001, wait: 0 });
 * assertEquals(nextCounter(door, now, 1000, 1001), { counter: 1002, wait: 25_000 });
 * assertEquals(nextCounter(door, now, 1000, 5_000_000), { counter: 1000, wait: 0 }); // far ahead: ignored
 * ```
 */
export function nextCounter(
  door: { readonly periodMs: number; readonly skew: number },
  now: number,
  planned: number,
  lastUsed: number | undefined,
): { counter: number; wait: number } {
  const current = Math.floor(now / door.periodMs);
  // A counter remembered far ahead of this clock (a clock that was once wrong, an edited
  // file) is not waited for: the server judges by its own clock, and the knock says so.
  const usable = lastUsed !== undefined && lastUsed + 1 <= current + door.skew + 1;
  const counter = usable ? Math.max(planned, lastUsed! + 1) : planned;
  if (counter <= current + door.skew) return { counter, wait: 0 };
  // In force from the period counter − skew on: wait for its start.
  return { counter, wait: (counter - door.skew) * door.periodMs - now };
}
