/**
 * The seam between the doorkeeper and a kernel firewall: one interface, one file per
 * backend (nft.ts, iptables.ts). A backend lets one source through a door's protected
 * ports until a time, and keeps everyone else out while sesame runs and after it stops.
 * @module
 */
import type { Door } from "../config/types.ts";
import type { OpenRecord } from "../state.ts";

/** A kernel firewall backend. */
export interface Firewall {
  /**
   * Installs sesame's rules for `doors` in one transaction, replacing earlier ones, with
   * the still-open `records` let through for their remaining time. Throws when it cannot:
   * the daemon must not run with unprotected ports.
   */
  apply(doors: readonly Door[], records: readonly OpenRecord[]): Promise<void>;
  /** Lets `record.ip` through `record`'s ports until `record.until` (extends when already open). */
  open(record: OpenRecord): Promise<void>;
  /** Removes `record.ip`'s access (backends whose kernel does not expire it by itself). */
  close(record: OpenRecord): Promise<void>;
}

/** Thrown when the firewall tool fails; the message carries its stderr. */
export class FirewallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FirewallError";
  }
}
