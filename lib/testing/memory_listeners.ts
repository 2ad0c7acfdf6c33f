/**
 * The in-memory twin of the socket listeners: nothing is bound for real; a test delivers
 * knocks and SPA packets to whatever endpoints the daemon "bound".
 * @module
 */
import { normalizeHost } from "../address.ts";
import { Counters } from "../counters.ts";
import type { Protocol } from "../knock.ts";
import {
  type BindFailure,
  type Endpoint,
  endpointKey,
  type KnockSink,
  type Listeners,
  type ListenersOptions,
} from "../net/listeners.ts";

/**
 * Listeners without sockets. `refuse` makes chosen endpoints fail to bind.
 *
 * @example
 * ```ts
 * import { MemoryListeners } from "./memory_listeners.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const heard: string[] = [];
 * const set = new MemoryListeners({
 *   knock: (k) => heard.push(`${k.source} ${k.port}/${k.protocol} ${k.proof}`),
 *   packet() {},
 * });
 * set.update([{ hostname: "::", port: 7000, protocol: "tcp" }]);
 * set.knock("::ffff:192.0.2.7", "tcp", 7000);
 * set.knock("192.0.2.7", "tcp", 7001); // not bound: unheard
 * assertEquals(heard, ["192.0.2.7 7000/tcp handshake"]);
 * ```
 */
export class MemoryListeners implements Listeners {
  readonly #bound = new Map<string, Endpoint>();
  readonly #sink: KnockSink;
  readonly #now: () => number;
  readonly #counters: Counters;
  /** Endpoint keys (`tcp/::/7000`) that fail to bind, with the reason. */
  readonly refuse: Map<string, string> = new Map();

  /** Same parameters as the socket listeners. */
  constructor(sink: KnockSink, options: ListenersOptions = {}) {
    this.#sink = sink;
    this.#now = options.now ?? Date.now;
    this.#counters = options.counters ?? new Counters();
  }

  /** Delivers an SPA packet as a bound SPA socket would; false when none listens there. */
  packet(source: string, port: number, payload: string, at: number = this.#now()): boolean {
    for (const e of this.#bound.values()) {
      if (e.spa && e.port === port) {
        this.#counters.spaPackets++;
        this.#sink.packet({ source: normalizeHost(source), port, payload, at });
        return true;
      }
    }
    return false;
  }

  /** Endpoints "bound" now. */
  get size(): number {
    return this.#bound.size;
  }

  /** "Binds" `wanted`, except the endpoints in {@link refuse}. */
  update(wanted: Iterable<Endpoint>): BindFailure[] {
    const failures: BindFailure[] = [];
    this.#bound.clear();
    for (const endpoint of wanted) {
      const reason = this.refuse.get(endpointKey(endpoint));
      if (reason) failures.push({ endpoint, reason });
      else this.#bound.set(endpointKey(endpoint), endpoint);
    }
    return failures;
  }

  /** Unbinds everything. */
  closeAll(): void {
    this.#bound.clear();
  }

  /** Delivers a knock as a socket on any bound address would; false when nothing listens there. */
  knock(source: string, protocol: Protocol, port: number, at: number = this.#now()): boolean {
    for (const e of this.#bound.values()) {
      if (!e.spa && e.protocol === protocol && e.port === port) {
        this.#counters.knocks++;
        if (protocol === "udp") this.#counters.udpKnocks++;
        this.#sink.knock({
          source: normalizeHost(source),
          protocol,
          port,
          at,
          proof: protocol === "tcp" ? "handshake" : "datagram",
        });
        return true;
      }
    }
    return false;
  }
}
