/**
 * The capture intake behind the daemon's {@link Listeners} seam: binds nothing. The nft
 * table's capture chain logs the first packet of every knock to an NFLOG group; the
 * {@link CaptureReader} reads them; this hands those on the wanted endpoints to the
 * intake, as the dummy listeners would: knocks with proof `capture` (a SYN or a datagram
 * proves nothing about its source), SPA datagrams whole.
 * @module
 */
import { normalizeHost } from "../address.ts";
import type { Firewall } from "../actions/firewall.ts";
import type { Clock, Timer } from "../clock.ts";
import { Counters } from "../counters.ts";
import type {
  BindFailure,
  Endpoint,
  KnockSink,
  Listeners,
  ListenersOptions,
} from "../net/listeners.ts";
import type { CapturedPacket } from "./pcap.ts";
import { CaptureReader } from "./reader.ts";

const decoder = new TextDecoder();

/** Options for {@link CaptureListeners}. */
export interface CaptureListenersOptions extends ListenersOptions {
  /** The NFLOG group. */
  readonly group: number;
  /** The reader's program. @default "tcpdump" */
  readonly program?: string;
}

/** Knocks from the kernel's NFLOG group instead of sockets. */
export class CaptureListeners implements Listeners {
  readonly #sink: KnockSink;
  readonly #counters: Counters;
  readonly #reader: CaptureReader;
  /** `tcp/7000`, `udp/7000`, `spa/62201` → wanted. */
  #wanted = new Set<string>();
  #addresses = new Set<string>();
  #started = false;

  /** @param sink the intake. */
  constructor(sink: KnockSink, options: CaptureListenersOptions) {
    this.#sink = sink;
    this.#counters = options.counters ?? new Counters();
    this.#reader = new CaptureReader({
      group: options.group,
      program: options.program,
      counters: this.#counters,
      onPacket: (p) => this.#deliver(p),
    });
  }

  /** Endpoints "bound": the ports knocks are taken on. */
  get size(): number {
    return this.#wanted.size;
  }

  /** Takes knocks on `wanted` from now on (nothing binds; nothing fails). */
  update(wanted: Iterable<Endpoint>): BindFailure[] {
    const next = new Set<string>();
    const addresses = new Set<string>();
    for (const e of wanted) {
      next.add(`${e.spa ? "spa" : e.protocol}/${e.port}`);
      addresses.add(e.hostname);
    }
    this.#wanted = next;
    this.#addresses = addresses;
    if (!this.#started) {
      this.#started = true;
      void this.#reader.start();
    }
    return [];
  }

  /** Stops the reader. */
  closeAll(): void {
    this.#wanted = new Set();
    void this.#reader.stop();
  }

  #deliver(p: CapturedPacket): void {
    const source = normalizeHost(p.source);
    // A listen address of one family only: the other's knocks are not this daemon's.
    if (!this.#addresses.has("::") && !this.#family(source)) return;
    if (p.protocol === "udp" && this.#wanted.has(`spa/${p.port}`)) {
      this.#counters.spaPackets++;
      this.#sink.packet({
        source,
        port: p.port,
        payload: decoder.decode(p.payload),
        at: p.at,
      });
      return;
    }
    if (!this.#wanted.has(`${p.protocol}/${p.port}`)) return;
    this.#counters.knocks++;
    if (p.protocol === "udp") this.#counters.udpKnocks++;
    this.#sink.knock({ source, protocol: p.protocol, port: p.port, at: p.at, proof: "capture" });
  }

  #family(source: string): boolean {
    const v6 = source.includes(":");
    for (const a of this.#addresses) if (a.includes(":") === v6) return true;
    return false;
  }
}

/**
 * Reads every 5 s how many knocks the kernel handed the reader (sesame's table counts
 * them), for the metrics and status beside what the reader parsed. Returns the timer.
 */
export function countCaptureLogged(
  nft: Pick<Firewall, "captureLogged">,
  counters: Counters,
  clock: Clock,
): Timer {
  const read = async () => {
    const logged = await nft.captureLogged?.().catch(() => undefined);
    if (logged !== undefined) counters.captureLogged = logged;
  };
  void read();
  return clock.setInterval(() => void read(), 5_000);
}
