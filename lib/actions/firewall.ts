/**
 * The seam between the opener and a kernel firewall: one interface, one file per backend
 * (nft.ts, iptables.ts) and a dry-run twin for tests (lib/testing/dry_run_firewall.ts). A backend lets one source through a
 * door's protected ports until a time, and keeps everyone else out while sesame runs and
 * after it stops.
 * @module
 */
import type { Door } from "../config/types.ts";
import type { OpenRecord } from "../store/store.ts";

/** A kernel firewall backend, with a lifecycle: start, open/close, shutdown. */
export interface Firewall {
  /**
   * Installs sesame's rules for `doors` in one transaction, replacing earlier ones, with
   * the still-open `records` let through for their remaining time (start and reload).
   * Throws when it cannot: the daemon must not run with unprotected ports.
   */
  start(
    doors: readonly Door[],
    records: Records,
    options?: StartOptions,
  ): Promise<void>;
  /** Lets `record.source` through `record`'s ports until `record.until` (extends when already open). */
  open(record: OpenRecord): Promise<void>;
  /**
   * Removes `record.source`'s access at its time. nft does nothing here: its kernel removed
   * the element at the element's own timeout, daemon or no daemon. iptables deletes the rule.
   */
  close(record: OpenRecord): Promise<void>;
  /** Removes `record.source`'s access now, before its time (`sesame revoke`), on every backend. */
  revoke(record: OpenRecord): Promise<void>;
  /**
   * True while sesame's rules stand as the last {@link start} left them, compared by
   * structure: elements and their expiries are not changes.
   */
  intact(): Promise<boolean>;
  /**
   * Whether sesame's rules from an earlier run are in the kernel now (before this run's
   * start writes them): sesame ran on this machine since it booted.
   */
  leftover?(): Promise<boolean>;
  /** nft only: packets the capture intake's rules logged so far (see NftFirewall). */
  captureLogged?(): Promise<number | undefined>;
  /**
   * Calls `onChange` soon after anything may have changed sesame's rules (another tool
   * reloading the firewall); the caller then asks {@link intact}. Until {@link shutdown}.
   */
  watch(onChange: () => void): void;
  /** Releases what the backend holds (processes, timers); the rules stay, so the ports stay protected. */
  shutdown(): Promise<void>;
}

/**
 * The doors still open, for {@link Firewall.start}: a list, or a function read when the
 * rules are written (so an opening made meanwhile is not left out).
 */
export type Records = readonly OpenRecord[] | (() => readonly OpenRecord[]);

/** The records now. */
export function recordsNow(records: Records): readonly OpenRecord[] {
  return typeof records === "function" ? records() : records;
}

/** Options for {@link Firewall.start}. */
export interface StartOptions {
  /**
   * A repair after another tool removed sesame's rules: put back what can be put back even
   * when part of the config cannot be applied (then throw). @default false
   */
  readonly repair?: boolean;
  /**
   * How the protected ports refuse everyone else: `drop`, `reject` (a TCP reset, an ICMP
   * port unreachable), or `auto`: as the host's other closed ports answer (drop when the
   * host's input policy drops, reject otherwise). A repair keeps what the start chose.
   * @default "drop"
   */
  readonly closedReply?: "auto" | "drop" | "reject";
  /**
   * The capture intake's NFLOG group (nft only): its rules go into sesame's table. A
   * repair keeps what the start chose. @default none
   */
  readonly capture?: { readonly group: number; readonly addresses?: readonly string[] };
}

/** The firewall backends by kind. */
export type Firewalls = Readonly<Record<"nft" | "iptables", Firewall>>;
