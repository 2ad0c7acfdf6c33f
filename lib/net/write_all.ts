/**
 * Writing a whole buffer to a connection (a write may take only part of it).
 * @module
 */

/**
 * Writes all of `bytes` to `conn`.
 *
 * @example
 * ```ts
 * import { writeAll } from "./write_all.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const peer = await listener.accept();
 * await writeAll(conn, new TextEncoder().encode("hello"));
 * conn.close();
 * assertEquals(await new Response(peer.readable).text(), "hello");
 * ```
 */
export async function writeAll(
  conn: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}
