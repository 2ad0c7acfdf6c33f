/**
 * The client's side of a knock: a TCP connection attempt or one UDP datagram, strictly
 * one after the other. TCP uses node:net because Deno.connect cannot choose the local
 * address (tests knock from 127.0.0.2, a second source, with it).
 * @module
 */
import net from "node:net";
import type { Knock } from "../knock.ts";

/** Options for {@link sendKnock}. */
export interface SendKnockOptions {
  /** The server's address (already resolved). */
  readonly host: string;
  /** Local address to send from. @default the system's choice */
  readonly localAddress?: string;
  /** How long a TCP knock waits for accept or refusal before counting as sent, ms. @default 200 */
  readonly tcpTimeoutMs?: number;
  /** Cancels the knock. */
  readonly signal?: AbortSignal;
}

/** How a TCP knock ended: all three count as sent; the server saw it only on `accepted`, or on `timeout` behind a filter. */
export type KnockResult = "accepted" | "refused" | "timeout" | "sent";

const UDP_PAYLOAD = new Uint8Array([0]);

/**
 * Sends one knock and resolves when it counts as sent.
 *
 * @example
 * ```ts
 * import { sendKnock } from "./sender.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept().then((conn) => conn.close());
 * const result = await sendKnock({ port: listener.addr.port, protocol: "tcp" }, { host: "127.0.0.1" });
 * assertEquals(result, "accepted");
 * await accepted;
 * ```
 */
export function sendKnock(knock: Knock, options: SendKnockOptions): Promise<KnockResult> {
  return knock.protocol === "tcp" ? tcpKnock(knock.port, options) : udpKnock(knock.port, options);
}

function tcpKnock(port: number, options: SendKnockOptions): Promise<KnockResult> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: options.host, port, localAddress: options.localAddress });
    let done = false;
    const finish = (result: KnockResult | Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onAbort = () =>
      finish(options.signal!.reason ?? new DOMException("aborted", "AbortError"));
    const timer = setTimeout(() => finish("timeout"), options.tcpTimeoutMs ?? 200);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => finish("accepted"));
    socket.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ECONNREFUSED" || e.code === "ECONNRESET") finish("refused");
      else finish(new Error(`TCP knock on port ${port} failed: ${e.code ?? e.message}`));
    });
  });
}

function udpKnock(port: number, options: SendKnockOptions): Promise<KnockResult> {
  return sendDatagram(port, UDP_PAYLOAD, options);
}

/** Sends one UDP datagram holding `payload` (a knock, or an SPA packet). */
export async function sendDatagram(
  port: number,
  payload: Uint8Array,
  options: SendKnockOptions,
): Promise<KnockResult> {
  const family6 = options.host.includes(":");
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: options.localAddress ?? (family6 ? "::" : "0.0.0.0"),
    port: 0,
  });
  try {
    await socket.send(payload, { transport: "udp", hostname: options.host, port });
  } finally {
    socket.close();
  }
  return "sent";
}

/**
 * Tries TCP connections to `port` until one is accepted or `timeoutMs` passes: tells a
 * client whether the door really opened.
 *
 * @example
 * ```ts
 * import { waitForOpen } from "./sender.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept().then((conn) => conn.close());
 * assertEquals(await waitForOpen("127.0.0.1", listener.addr.port, 2000), true);
 * await accepted;
 * ```
 */
export async function waitForOpen(
  host: string,
  port: number,
  timeoutMs: number,
  localAddress?: string,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const left = Math.max(50, Math.min(1000, deadline - Date.now()));
    const result = await tcpKnock(port, { host, localAddress, tcpTimeoutMs: left });
    if (result === "accepted") return true;
    if (result === "refused") {
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(0, deadline - Date.now()))));
    }
  }
  return false;
}
