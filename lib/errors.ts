/**
 * Error classes that callers catch. Misuse of the library (a bug) throws the
 * built-in `TypeError`/`RangeError`; these classes are for mistakes a user can fix.
 * @module
 */

/** Where a problem sits in a config file. Lines and columns count from 1. */
export interface SourcePosition {
  /** The file, as the user named it. */
  readonly file: string;
  /** 1-based line. */
  readonly line: number;
  /** 1-based column. */
  readonly column: number;
}

/** One problem found in a config: a dotted key path, a message and, when known, a position. */
export interface ConfigIssue {
  /** Dotted path of the key, e.g. `doors.ssh.length`. Empty for the whole document. */
  readonly path: string;
  /** What is wrong, with the value received where it helps. */
  readonly message: string;
  /** Where in the file, when the config came from a file. */
  readonly position?: SourcePosition;
}

/** Formats an issue as `file:line:column: path: message`. */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.position
    ? `${issue.position.file}:${issue.position.line}:${issue.position.column}: `
    : "";
  const path = issue.path ? `${issue.path}: ` : "";
  return `${where}${path}${issue.message}`;
}

/**
 * A config that cannot be used. Carries every issue found, not just the first.
 *
 * @example Report every issue
 * ```ts
 * import { ConfigError } from "./errors.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * try {
 *   throw new ConfigError([{ path: "doors.ssh.length", message: "must be at least 1, received 0" }]);
 * } catch (e) {
 *   assertEquals(e instanceof ConfigError && e.message, "doors.ssh.length: must be at least 1, received 0");
 * }
 * ```
 */
export class ConfigError extends Error {
  /** Every problem found. */
  readonly issues: readonly ConfigIssue[];
  /** Creates the error from every problem found. @param issues the problems. @param options the cause. */
  constructor(issues: readonly ConfigIssue[], options?: ErrorOptions) {
    super(issues.map(formatIssue).join("\n"), options);
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/** A command line that cannot be run: unknown flag, missing argument. Exit code 2. */
export class UsageError extends Error {
  /** Creates the error. @param message what is wrong, prefixed by the command. @param options the cause. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}

/** The state file exists but cannot be trusted (corrupt, truncated, wrong version). */
export class StateFileError extends Error {
  /** Creates the error. @param message why the file cannot be trusted. @param options the cause. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StateFileError";
  }
}

/** The firewall tool failed (nft, iptables-restore); the message carries its stderr. */
export class FirewallError extends Error {
  /** Creates the error. @param message what failed, with the tool's own words. @param options the cause. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FirewallError";
  }
}
