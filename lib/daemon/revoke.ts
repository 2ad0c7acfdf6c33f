/**
 * `sesame revoke`: closes now the doors open on a door for an address or a user, on this
 * gateway and, for a shared door, in the fleet; with `established` it drops their
 * connections too (conntrack). Established connections otherwise continue, as after `for`.
 * @module
 */
import { dropConnections } from "../actions/conntrack.ts";
import type { CommandRunner } from "../actions/runner.ts";
import { parseAddress } from "../address.ts";
import type { Fleet } from "../cluster/fleet.ts";
import type { Door } from "../config/types.ts";
import type { OpenRecord } from "../store/store.ts";
import type { RevokeRequest } from "./admin.ts";
import type { ControlAnswer } from "./control.ts";
import type { Opener } from "./opener.ts";

/** What a revoke works with. */
export interface RevokeDeps {
  /** The doors in force. */
  readonly doors: readonly Door[];
  /** Closes this gateway's doors. */
  readonly opener: Pick<Opener, "revoke">;
  /** With a cluster: revokes a shared door's grants in the fleet. */
  readonly fleet?: Pick<Fleet, "revoke">;
  /** Runs conntrack. */
  readonly runner: CommandRunner;
}

/** Closes the doors `request` names; the answer says what was closed, here and in the fleet. */
export async function revokeDoors(
  deps: RevokeDeps,
  request: RevokeRequest,
): Promise<ControlAnswer> {
  const { doors, opener, fleet: ourFleet, runner } = deps;
  const door = doors.find((d) => d.name === request.door);
  if (!door) {
    return {
      ok: false,
      error: `no door "${request.door}" in the running config (doors: ${
        doors.map((d) => d.name).join(", ")
      })`,
    };
  }
  let source: string | undefined;
  if (request.ip !== undefined) {
    source = parseAddress(request.ip)?.text;
    if (!source) return { ok: false, error: `not an IP address: ${JSON.stringify(request.ip)}` };
  }
  if (
    request.user !== undefined &&
    !(door.kind === "rotating" && door.users?.some((u) => u.name === request.user))
  ) {
    return { ok: false, error: `door ${door.name} has no user "${request.user}"` };
  }
  if (source === undefined && request.user === undefined) {
    return { ok: false, error: "say whose door to close: an address or a user" };
  }
  const { closed, failed } = await opener.revoke({
    door: door.name,
    source,
    user: request.user,
  });
  // A shared door closes on every node that reads the revoke; one etcd cannot reach
  // keeps it until its time (the kernel's timeout).
  let fleet: { revoked?: number; error?: string } | undefined;
  if (door.share && ourFleet) {
    fleet = await ourFleet.revoke(door.name, source, request.user).then(
      (revoked) => ({ revoked }),
      (e) => ({ error: `the fleet could not be told: ${(e as Error).message}` }),
    );
    if (closed.length + failed.length === 0 && fleet.revoked) {
      return { ok: true, closed: [], fleet_revoked: fleet.revoked };
    }
    if (closed.length + failed.length === 0 && fleet.error) {
      return { ok: false, error: `nothing was open here, and ${fleet.error}` };
    }
  }
  if (closed.length + failed.length === 0 && request.established && source !== undefined) {
    // The door closed at its time already; its connections may live on: drop them.
    const dropped = await dropConnections(runner, [closedRecord(door, source)]);
    if (dropped > 0) return { ok: true, closed: [], established_dropped: dropped };
  }
  if (closed.length + failed.length === 0) {
    return {
      ok: false,
      nothing: true,
      error: `nothing was open on door ${door.name} for ${source ?? `user ${request.user}`}`,
    };
  }
  if (failed.length > 0) {
    return {
      ok: false,
      error: `closing failed for ${
        failed.map((r) => r.source).join(", ")
      } (see the daemon's log; it retries)`,
    };
  }
  const dropped = request.established ? await dropConnections(runner, closed) : undefined;
  return {
    ok: true,
    closed: closed.map((r) => ({ source: r.source, user: r.user ?? null })),
    ...(dropped === undefined ? {} : { established_dropped: dropped }),
    ...(fleet?.revoked ? { fleet_revoked: fleet.revoked } : {}),
    ...(fleet?.error ? { fleet_error: fleet.error } : {}),
  };
}

/** The record a door that already closed for `source` had (what conntrack should drop). */
function closedRecord(door: Door, source: string): OpenRecord {
  const spec = door.open?.nft ?? door.open?.iptables;
  return {
    door: door.name,
    source,
    until: 0,
    close: null,
    ...(spec ? { firewall: { kind: "nft", ports: spec.ports, protocol: spec.protocol } } : {}),
  };
}
