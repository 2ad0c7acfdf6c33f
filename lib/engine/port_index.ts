/**
 * Which doors a knock concerns, built once from the config: per protocol and port, the
 * doors whose pool holds it, and whether it is a static door's decoy. The engine looks
 * a knock up here first; a port in no pool costs one array read.
 * @module
 */
import type { Door } from "../config/types.ts";
import type { Protocol } from "../knock.ts";

/**
 * The port → doors index of a config.
 *
 * @example
 * ```ts
 * import { PortIndex } from "./port_index.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({ doors: { legacy: { sequence: [7000, 8000], decoys: 1 } } });
 * const index = new PortIndex(doors);
 * assertEquals(index.doorsAt("tcp", 7000), [0]);
 * assertEquals(index.doorsAt("tcp", 7500), undefined);
 * assertEquals(index.isDecoy("tcp", 6999), true);
 * ```
 */
export class PortIndex {
  /** Per protocol, per port: indices of the doors whose pool holds it. */
  readonly #doors: Record<Protocol, (number[] | undefined)[]> = {
    tcp: new Array(65536),
    udp: new Array(65536),
  };
  /** Per protocol, per port: 1 where a static door keeps a decoy no door really uses. */
  readonly #decoy: Record<Protocol, Uint8Array> = {
    tcp: new Uint8Array(65536),
    udp: new Uint8Array(65536),
  };

  /** Indexes `doors` (indices are positions in this list). */
  constructor(doors: readonly Door[]) {
    doors.forEach((door, i) => {
      for (const protocol of ["tcp", "udp"] as const) {
        for (const port of door.pool[protocol]) (this.#doors[protocol][port] ??= []).push(i);
        if (door.kind === "static") {
          for (const port of door.decoys[protocol]) this.#decoy[protocol][port] = 1;
        }
      }
    });
    // A port that another door really uses is no decoy: its knockers must not be banned.
    for (const door of doors) {
      if (door.kind === "static") {
        for (const k of door.sequence) this.#decoy[k.protocol][k.port] = 0;
      } else {
        for (const protocol of ["tcp", "udp"] as const) {
          for (const port of door.pool[protocol]) this.#decoy[protocol][port] = 0;
        }
      }
    }
  }

  /** The doors whose pool holds this port, or `undefined` when none does. */
  doorsAt(protocol: Protocol, port: number): readonly number[] | undefined {
    return this.#doors[protocol][port];
  }

  /** True when the port is a decoy of a static door and no door's real knock. */
  isDecoy(protocol: Protocol, port: number): boolean {
    return this.#decoy[protocol][port] === 1;
  }
}
