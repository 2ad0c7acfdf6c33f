/**
 * What to bind, and what the binding said, without touching a socket: the endpoints the
 * doors want, whether to fall back from `::` to IPv4, and which door lost which ports.
 * @module
 */
import type { Door } from "../config/types.ts";
import type { BindFailure, Endpoint } from "../net/listeners.ts";

/**
 * The endpoints to bind: every pool port of every door on every address. Pools are bound
 * whole, always: a port that listened only while its code was in force would show a scan
 * which ports the code uses.
 *
 * @example
 * ```ts
 * import { wantedEndpoints } from "./binding.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({ doors: { legacy: { sequence: [7000, "8000/udp"], decoys: 0 } } });
 * const endpoints = wantedEndpoints(doors, ["::"]);
 * assertEquals(endpoints.map((e) => `${e.port}/${e.protocol}`).join(" "), "7000/tcp 8000/udp");
 * ```
 */
export function wantedEndpoints(
  doors: readonly Door[],
  addresses: readonly string[],
): Endpoint[] {
  const endpoints = new Map<string, Endpoint>();
  const add = (hostname: string, port: number, protocol: "tcp" | "udp") =>
    endpoints.set(`${protocol}/${hostname}/${port}`, { hostname, port, protocol });
  for (const hostname of addresses) {
    for (const door of doors) {
      for (const protocol of ["tcp", "udp"] as const) {
        for (const port of door.pool[protocol]) add(hostname, port, protocol);
      }
      if (door.kind === "spa") {
        const port = door.spa.port;
        endpoints.set(`spa/${hostname}/${port}`, { hostname, port, protocol: "udp", spa: true });
      }
    }
  }
  return [...endpoints.values()];
}

/**
 * True when `::` failed on every port for a reason other than "in use" or "denied": the
 * kernel has no IPv6 (EAFNOSUPPORT and the like), so IPv4 alone is the way.
 *
 * @example
 * ```ts
 * import { shouldFallBackToIPv4 } from "./binding.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const e = { hostname: "::", port: 7000, protocol: "tcp" as const };
 * assertEquals(shouldFallBackToIPv4([e], [{ endpoint: e, reason: "AddrNotAvailable" }]), true);
 * assertEquals(shouldFallBackToIPv4([e], [{ endpoint: e, reason: "AddrInUse" }]), false);
 * ```
 */
export function shouldFallBackToIPv4(
  wanted: readonly Endpoint[],
  failures: readonly BindFailure[],
): boolean {
  const v6Wanted = wanted.filter((e) => e.hostname === "::").length;
  const v6 = failures.filter((f) => f.endpoint.hostname === "::");
  return v6Wanted > 0 && v6.length === v6Wanted &&
    v6.every((f) => f.reason !== "AddrInUse" && f.reason !== "PermissionDenied");
}

/** A door's ports that could not be bound. */
export interface DoorBindFailure {
  /** The door's name. */
  readonly door: string;
  /** How many. */
  readonly count: number;
  /** The distinct reasons, e.g. `AddrInUse`. */
  readonly reasons: string;
  /** Up to 8 of them, as `port/protocol`. */
  readonly sample: string;
}

/**
 * Groups bind failures by door, for one warning per door.
 *
 * @example
 * ```ts
 * import { doorBindFailures } from "./binding.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({ doors: { legacy: { sequence: [7000], decoys: 0 } } });
 * const endpoint = { hostname: "::", port: 7000, protocol: "tcp" as const };
 * assertEquals(doorBindFailures(doors, [{ endpoint, reason: "AddrInUse" }]), [
 *   { door: "legacy", count: 1, reasons: "AddrInUse", sample: "7000/tcp" },
 * ]);
 * ```
 */
export function doorBindFailures(
  doors: readonly Door[],
  failures: readonly BindFailure[],
): DoorBindFailure[] {
  const out: DoorBindFailure[] = [];
  for (const door of doors) {
    const mine = failures.filter((f) => door.pool[f.endpoint.protocol].includes(f.endpoint.port));
    if (mine.length === 0) continue;
    out.push({
      door: door.name,
      count: mine.length,
      reasons: [...new Set(mine.map((f) => f.reason))].join(", "),
      sample: mine.slice(0, 8).map((f) => `${f.endpoint.port}/${f.endpoint.protocol}`).join(" "),
    });
  }
  return out;
}
