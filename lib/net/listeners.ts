/**
 * The dummy listeners: the only place that accepts sockets. {@link Listeners} is the seam
 * the daemon binds through; {@link SocketListeners} accepts for real (its in-memory twin
 * is `MemoryListeners` in lib/testing/). Each TCP connection is recorded at accept and closed
 * at once; each UDP datagram is recorded and dropped. Listeners survive every accept
 * error: a connect scan resets its probes, accept then fails, and a plain `for await`
 * would end the loop for good.
 * @module
 */
import { normalizeHost } from "../address.ts";
import { Counters } from "../counters.ts";
import type { HeardKnock, HeardPacket, Protocol } from "../knock.ts";

/** Where listeners deliver what they hear (the daemon's intake). */
export interface KnockSink {
  /** A connection attempt or a datagram on a knock port. */
  knock(knock: HeardKnock): void;
  /** A datagram on an SPA port. */
  packet(packet: HeardPacket): void;
}

/** Options for a {@link Listeners} implementation. */
export interface ListenersOptions {
  /** The wall clock that stamps what is heard. @default Date.now */
  readonly now?: () => number;
  /** Where knocks, SPA packets and accept errors are counted. @default its own */
  readonly counters?: Counters;
}

/** One socket to bind. */
export interface Endpoint {
  /** Local address, e.g. `::` or `127.0.0.1`. */
  readonly hostname: string;
  /** Port. */
  readonly port: number;
  /** Protocol. */
  readonly protocol: Protocol;
  /** A UDP socket for SPA packets: read whole (not a knock), delivered to the packet handler. */
  readonly spa?: true;
}

/** A socket that could not be bound, and why. */
export interface BindFailure {
  /** The endpoint. */
  readonly endpoint: Endpoint;
  /** The error's class name, e.g. `AddrInUse`. */
  readonly reason: string;
}

/** Returns the endpoint's key, `tcp/::/20000`. */
export function endpointKey(e: Endpoint): string {
  return `${e.spa ? "spa" : e.protocol}/${e.hostname}/${e.port}`;
}

/** A set of dummy listeners that can grow and shrink without dropping the ones that stay. */
export interface Listeners {
  /**
   * Binds what is wanted and not bound yet, closes what is bound and no longer wanted.
   * Returns the endpoints that could not be bound; the rest keep working.
   */
  update(wanted: Iterable<Endpoint>): BindFailure[];
  /** Closes every listener. */
  closeAll(): void;
  /** Endpoints bound now. */
  readonly size: number;
}

/** Makes the daemon's listeners, delivering to `sink`. */
export type ListenersFactory = (sink: KnockSink, options: ListenersOptions) => Listeners;

interface Open {
  close(): void;
}

/**
 * Real sockets. A reload keeps the listeners that stay, so knocks in progress survive.
 *
 * @example
 * ```ts
 * import { SocketListeners } from "./listeners.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const set = new SocketListeners({ knock() {}, packet() {} });
 * const failures = set.update([{ hostname: "127.0.0.1", port: 0, protocol: "tcp" }]);
 * assertEquals(failures.length, 0);
 * assertEquals(set.size, 1);
 * set.closeAll();
 * ```
 */
export class SocketListeners implements Listeners {
  readonly #open = new Map<string, Open>();
  readonly #sink: KnockSink;
  readonly #now: () => number;
  readonly #counters: Counters;

  /** Creates an empty set; {@link update} binds. @param sink gets what is heard. */
  constructor(sink: KnockSink, options: ListenersOptions = {}) {
    this.#sink = sink;
    this.#now = options.now ?? Date.now;
    this.#counters = options.counters ?? new Counters();
  }

  /** Endpoints bound now. */
  get size(): number {
    return this.#open.size;
  }

  /** Binds and releases sockets to match `wanted`; returns what could not be bound. */
  update(wanted: Iterable<Endpoint>): BindFailure[] {
    const keep = new Map<string, Endpoint>();
    for (const e of wanted) keep.set(endpointKey(e), e);
    for (const [key, open] of this.#open) {
      if (!keep.has(key)) {
        open.close();
        this.#open.delete(key);
      }
    }
    const failures: BindFailure[] = [];
    for (const [key, endpoint] of keep) {
      if (this.#open.has(key)) continue;
      try {
        this.#open.set(
          key,
          endpoint.spa
            ? this.#spa(endpoint)
            : endpoint.protocol === "tcp"
            ? this.#tcp(endpoint)
            : this.#udp(endpoint),
        );
      } catch (e) {
        failures.push({ endpoint, reason: (e as Error).name ?? String(e) });
      }
    }
    return failures;
  }

  closeAll(): void {
    for (const open of this.#open.values()) open.close();
    this.#open.clear();
  }

  #tcp(endpoint: Endpoint): Open {
    const listener = Deno.listen({
      hostname: endpoint.hostname,
      port: endpoint.port,
      transport: "tcp",
    });
    let closed = false;
    const { port } = endpoint;
    (async () => {
      while (!closed) {
        let conn: Deno.TcpConn;
        try {
          conn = await listener.accept();
        } catch (e) {
          if (closed || e instanceof Deno.errors.BadResource) return;
          this.#counters.acceptErrors++;
          // Out of file descriptors: give the kernel a moment rather than spin.
          if (
            !(e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.NotConnected)
          ) {
            await new Promise((r) => setTimeout(r, 10));
          }
          continue;
        }
        const at = this.#now();
        const source = normalizeHost(conn.remoteAddr.hostname);
        try {
          conn.close();
        } catch { /* already reset by the peer */ }
        this.#counters.knocks++;
        this.#sink.knock({ source, protocol: "tcp", port, at, proof: "handshake" });
      }
    })();
    return {
      close() {
        closed = true;
        try {
          listener.close();
        } catch { /* already closed */ }
      },
    };
  }

  /** An SPA socket: whole datagrams (up to 1500 bytes, one more to tell an oversized one). */
  #spa(endpoint: Endpoint): Open {
    const decoder = new TextDecoder("latin1");
    const { port } = endpoint;
    return this.#datagrams(endpoint, 1501, (source, data, at) => {
      this.#counters.spaPackets++;
      this.#sink.packet({ source, port, payload: decoder.decode(data), at });
    });
  }

  /** A UDP knock socket: the payload is ignored. */
  #udp(endpoint: Endpoint): Open {
    // A small buffer: without one Deno holds 64 KiB per socket.
    const { port } = endpoint;
    return this.#datagrams(endpoint, 64, (source, _data, at) => {
      this.#counters.knocks++;
      this.#counters.udpKnocks++;
      this.#sink.knock({ source, protocol: "udp", port, at, proof: "datagram" });
    });
  }

  /** A UDP socket's receive loop: each datagram (normalised source, its bytes) to `deliver`. */
  #datagrams(
    endpoint: Endpoint,
    size: number,
    deliver: (source: string, data: Uint8Array, at: number) => void,
  ): Open {
    const socket = Deno.listenDatagram({
      hostname: endpoint.hostname,
      port: endpoint.port,
      transport: "udp",
    });
    let closed = false;
    const buffer = new Uint8Array(size);
    (async () => {
      while (!closed) {
        let data: Uint8Array, from: Deno.Addr;
        try {
          [data, from] = await socket.receive(buffer);
        } catch (e) {
          if (closed || e instanceof Deno.errors.BadResource) return;
          this.#counters.acceptErrors++;
          continue;
        }
        deliver(normalizeHost((from as Deno.NetAddr).hostname), data, this.#now());
      }
    })();
    return {
      close() {
        closed = true;
        try {
          socket.close();
        } catch { /* already closed */ }
      },
    };
  }
}
