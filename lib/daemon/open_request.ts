/**
 * What the opener is given: its parts, the requests to open, what a revoke closes, how a
 * start's recovery treats the records it takes over.
 * @module
 */
import type { Firewalls } from "../actions/firewall.ts";
import type { CommandRunner } from "../actions/runner.ts";
import type { Clock } from "../clock.ts";
import type { Door } from "../config/types.ts";
import type { Counters } from "../counters.ts";
import type { UsedCode } from "../engine/used_codes.ts";
import type { OpenRecord, SpaDigest, Store } from "../store/store.ts";
import type { DoorEvent } from "./report.ts";
import type { Verdict } from "../cluster/claims.ts";

/** Options for {@link Opener}. */
export interface OpenerOptions {
  /** Where codes and records are committed before any act. */
  readonly store: Store;
  /** The firewall backends. */
  readonly firewalls: Firewalls;
  /** Runs open and close commands. */
  readonly runner: CommandRunner;
  /** Wall time for `until`s; monotonic time and timers for the closes. */
  readonly clock: Clock;
  /** Where opens, closes and failures are counted. */
  readonly counters: Counters;
  /** Called for every {@link DoorEvent}. */
  readonly report: (event: DoorEvent) => void;
  /**
   * With a cluster: commits each request's code, SPA packet and shared grant in etcd
   * first; a request it refuses opens nothing.
   */
  readonly fleet?: {
    claim(request: OpenRequest): Promise<Verdict>;
    /** Takes back a shared grant whose door could not open here. */
    withdraw?(request: OpenRequest): Promise<void>;
  };
}

/** One door to open for one source: what {@link Opener.request} takes. */
export interface OpenRequest {
  /** The door (it has `open`). */
  readonly door: Door;
  /** Whom it opens for. */
  readonly source: string;
  /** On a door with `users`: whose code it was. */
  readonly user?: string;
  /** The code used up (rotating doors): committed before the door opens. */
  readonly code?: UsedCode;
  /** When the last knock arrived (for the latency histogram), ms. */
  readonly at?: number;
  /** How long to open, when not the door's `for` (an SPA client's timeout), ms. */
  readonly forMs?: number;
  /** The SPA packet used up by this open: committed with it. */
  readonly spa?: SpaDigest;
  /** When it closes, ms, when already decided (a shared door: its grant's `until`). */
  readonly until?: number;
  /** A shared door another node decided (mirrored here): nothing to claim or publish. */
  readonly mirror?: true;
  /**
   * Told once whether this request opened (or extended) its door here: after its batch
   * acted, or when it was refused or its commit failed. Not told at a stop.
   */
  readonly acted?: (opened: boolean) => void;
}

/** Options for {@link Opener.restore}. */
export interface RestoreOptions {
  /** A door's command time limit, ms. @default 10 s */
  readonly timeoutOf?: (door: string) => number | undefined;
  /** False for a record whose door or user the config no longer has: closed, never reopened. @default all known */
  readonly known?: (record: OpenRecord) => boolean;
}

/** Which open doors {@link Opener.revoke} closes: a door's, for a source, a user, or all. */
export interface RevokeMatch {
  /** The door's name. */
  readonly door: string;
  /** Only this source. */
  readonly source?: string;
  /** Only this user's. */
  readonly user?: string;
}
