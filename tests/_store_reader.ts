/**
 * Reads a daemon's store from another process, as `sesame status` will, again and again
 * for `seconds`, and checks that each read is one consistent snapshot: every open door of
 * the bind_source door was committed together with its used code, so the counts match.
 * Prints `{"reads": N, "torn": M, "maxOpen": K}`.
 */
import { readStore } from "../lib/store/sqlite.ts";

const [path, seconds] = Deno.args;
const deadline = Date.now() + Number(seconds) * 1000;
let reads = 0, torn = 0, maxOpen = 0;
while (Date.now() < deadline) {
  try {
    const state = readStore(path);
    const codes = state.used.filter((c) => c.prefix !== undefined).length;
    if (codes !== state.open.length) torn++;
    maxOpen = Math.max(maxOpen, state.open.length);
    reads++;
  } catch { /* not created yet */ }
  await new Promise((r) => setTimeout(r, 1));
}
console.log(JSON.stringify({ reads, torn, maxOpen }));
