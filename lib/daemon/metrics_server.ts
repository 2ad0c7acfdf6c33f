/**
 * Serving the metrics over HTTP: a small accept loop with a connection cap and a deadline
 * per connection, so no local user can hold the daemon's file descriptors (the text
 * itself is rendered by metrics.ts).
 * @module
 */
import { writeAll } from "../net/write_all.ts";

/** A metrics endpoint being served. */
export interface MetricsServer {
  /** Where it listens (the port the system chose when 0 was asked). */
  readonly port: number;
  /** Stops serving. */
  shutdown(): Promise<void>;
}

/** Options for {@link serveMetrics}. */
export interface ServeMetricsOptions {
  /** Connections served at once; more are closed at once. @default 32 */
  readonly maxConnections?: number;
  /** A connection that has not sent its request and read the answer by then is closed, ms. @default 5000 */
  readonly deadlineMs?: number;
  /** Called for each connection refused (over the cap) and each accept that failed. */
  readonly onRefused?: (why: "cap" | "accept") => void;
}

const MAX_REQUEST = 8192;
const ENCODER = new TextEncoder();

/**
 * Serves `render()` at `/metrics` on `hostname:port` (anything else is a 404), HTTP/1.1,
 * one request per connection. Every connection has a cap and a deadline: idle or
 * half-sent connections from any local user cannot pile up until the daemon runs out of
 * file descriptors (`Deno.serve` has neither). An accept that fails (the descriptors ran
 * out anyway) is counted and retried after a pause, never fatal.
 *
 * @example
 * ```ts
 * import { serveMetrics } from "./metrics_server.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const server = serveMetrics("127.0.0.1", 0, () => "sesame_up 1\n");
 * const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
 * assertEquals(await response.text(), "sesame_up 1\n");
 * await server.shutdown();
 * ```
 * @throws {Deno.errors.AddrInUse} and the like when the address cannot be bound.
 */
export function serveMetrics(
  hostname: string,
  port: number,
  render: () => string,
  options: ServeMetricsOptions = {},
): MetricsServer {
  const max = options.maxConnections ?? 32;
  const deadlineMs = options.deadlineMs ?? 5000;
  const listener = Deno.listen({ hostname, port, transport: "tcp" });
  const open = new Set<Deno.Conn>();
  let closed = false;
  const loop = (async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (closed || e instanceof Deno.errors.BadResource) return;
        options.onRefused?.("accept");
        await new Promise((r) => setTimeout(r, 50)); // out of descriptors: let them free up
        continue;
      }
      if (open.size >= max) {
        options.onRefused?.("cap");
        try {
          conn.close();
        } catch { /* reset by the peer */ }
        continue;
      }
      open.add(conn);
      void answer(conn, render, deadlineMs).finally(() => {
        open.delete(conn);
        try {
          conn.close();
        } catch { /* closed by the deadline */ }
      });
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async shutdown() {
      closed = true;
      try {
        listener.close();
      } catch { /* closed */ }
      for (const conn of open) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      await loop;
    },
  };
}

/** Reads one request (up to its blank line) and writes the answer, all within the deadline. */
async function answer(conn: Deno.Conn, render: () => string, deadlineMs: number): Promise<void> {
  const timer = setTimeout(() => {
    try {
      conn.close(); // pending reads and writes fail: the connection is done
    } catch { /* closed */ }
  }, deadlineMs);
  try {
    const buffer = new Uint8Array(MAX_REQUEST);
    let length = 0;
    let head = "";
    while (!head.includes("\r\n\r\n") && !head.includes("\n\n")) {
      if (length === buffer.length) return; // a request this large is no scrape
      const n = await conn.read(buffer.subarray(length));
      if (n === null) return;
      length += n;
      head = new TextDecoder().decode(buffer.subarray(0, length));
    }
    const [method, target] = head.split("\r\n", 1)[0].split(" ");
    const path = (target ?? "").split("?")[0];
    const ok = (method === "GET" || method === "HEAD") && path === "/metrics";
    const body = ok ? render() : "sesame serves /metrics\n";
    const bytes = ENCODER.encode(body);
    const response = ENCODER.encode(
      `HTTP/1.1 ${ok ? "200 OK" : "404 Not Found"}\r\n` +
        `content-type: text/plain; version=0.0.4; charset=utf-8\r\n` +
        `content-length: ${bytes.length}\r\nconnection: close\r\n\r\n`,
    );
    await writeAll(conn, response);
    if (method !== "HEAD") await writeAll(conn, bytes);
  } catch {
    /* the client left, or the deadline closed it */
  } finally {
    clearTimeout(timer);
  }
}
