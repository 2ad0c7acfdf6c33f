/**
 * The dummy listeners: the only place that accepts sockets. Each TCP connection is
 * recorded at accept and closed at once; each UDP datagram is recorded and dropped.
 * Listeners survive every accept error: a connect scan resets its probes, accept then
 * fails, and a plain `for await` would end the loop for good.
 * @module
 */
import { normalizeHost } from "../address.ts";
import type { Protocol } from "../sequence.ts";

/** Called for every connection attempt or datagram. `source` is already normalised. */
export type KnockHandler = (source: string, protocol: Protocol, port: number, at: number) => void;

/** One socket to bind. */
export interface Endpoint {
  /** Local address, e.g. `::` or `127.0.0.1`. */
  readonly hostname: string;
  /** Port. */
  readonly port: number;
  /** Protocol. */
  readonly protocol: Protocol;
}

/** A socket that could not be bound, and why. */
export interface BindFailure {
  /** The endpoint. */
  readonly endpoint: Endpoint;
  /** The error's class name, e.g. `AddrInUse`. */
  readonly reason: string;
}

/** Counters for the start-up summary and the hardening checks. */
export interface ListenerStats {
  /** Accept calls that failed (reset probes of a connect scan, fd exhaustion). */
  acceptErrors: number;
  /** Knocks delivered to the handler. */
  knocks: number;
}

/** Returns the endpoint's key, `tcp/::/20000`. */
export function endpointKey(e: Endpoint): string {
  return `${e.protocol}/${e.hostname}/${e.port}`;
}

interface Open {
  close(): void;
}

/**
 * A set of dummy listeners that can grow and shrink without dropping the ones that stay
 * (a reload or a window re-bind keeps knocks in progress).
 *
 * @example
 * ```ts ignore
 * import { ListenerSet } from "./listeners.ts";
 * const set = new ListenerSet((source, protocol, port) => console.log(source, protocol, port));
 * const failures = set.update([{ hostname: "127.0.0.1", port: 20000, protocol: "tcp" }]);
 * set.closeAll();
 * ```
 */
export class ListenerSet {
  readonly #open = new Map<string, Open>();
  readonly #onKnock: KnockHandler;
  readonly #now: () => number;
  /** Counters since creation. */
  readonly stats: ListenerStats = { acceptErrors: 0, knocks: 0 };

  /**
   * @param onKnock called for each knock.
   * @param now the clock. @default Date.now
   */
  constructor(onKnock: KnockHandler, now: () => number = Date.now) {
    this.#onKnock = onKnock;
    this.#now = now;
  }

  /** Endpoints bound now. */
  get size(): number {
    return this.#open.size;
  }

  /** True when `endpoint` is bound. */
  has(endpoint: Endpoint): boolean {
    return this.#open.has(endpointKey(endpoint));
  }

  /**
   * Binds what is wanted and not bound yet, closes what is bound and no longer wanted.
   * Returns the endpoints that could not be bound; the rest keep working.
   */
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
          endpoint.protocol === "tcp" ? this.#tcp(endpoint) : this.#udp(endpoint),
        );
      } catch (e) {
        failures.push({ endpoint, reason: (e as Error).name ?? String(e) });
      }
    }
    return failures;
  }

  /** Closes every listener. */
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
          this.stats.acceptErrors++;
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
        this.stats.knocks++;
        this.#onKnock(source, "tcp", port, at);
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

  #udp(endpoint: Endpoint): Open {
    const socket = Deno.listenDatagram({
      hostname: endpoint.hostname,
      port: endpoint.port,
      transport: "udp",
    });
    let closed = false;
    const { port } = endpoint;
    // A small buffer: without one Deno holds 64 KiB per socket. The payload is ignored.
    const buffer = new Uint8Array(64);
    (async () => {
      while (!closed) {
        let from: Deno.Addr;
        try {
          [, from] = await socket.receive(buffer);
        } catch (e) {
          if (closed || e instanceof Deno.errors.BadResource) return;
          this.stats.acceptErrors++;
          continue;
        }
        this.stats.knocks++;
        this.#onKnock(normalizeHost((from as Deno.NetAddr).hostname), "udp", port, this.#now());
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
