/**
 * `listen.log`: where `sesame listen` logs, for hosts without journald: `stderr` (the
 * default; the journal under systemd), `file` (appended, reopened on SIGUSR1 for
 * logrotate) or `syslog` (facility daemon, tag sesame), and the line format.
 * @module
 */
import type { LogTarget } from "../log_sinks.ts";
import { describe } from "../ports.ts";
import type { Checker } from "./checker.ts";

/** The keys `listen.log` takes. */
export const LOG_KEYS = ["target", "path", "socket", "format"];

/** `listen.log`, checked. */
export interface LogSettings {
  /** Where lines go. */
  readonly to: LogTarget;
  /** The line format; absent: `--log-format`, else text. */
  readonly format?: "text" | "json";
}

/**
 * Checks `listen.log`; absent means stderr.
 *
 * @example
 * ```ts
 * import { validateConfig } from "./validate.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const config = validateConfig({
 *   listen: { log: { target: "file", path: "/var/log/sesame/sesame.log", format: "json" } },
 *   doors: { legacy: { sequence: [7000, 8000] } },
 * });
 * assertEquals(config.log, { to: { target: "file", path: "/var/log/sesame/sesame.log" }, format: "json" });
 * ```
 */
export function checkLog(c: Checker, value: unknown): LogSettings {
  if (value === undefined) return { to: { target: "stderr" } };
  const log = c.map(value, ["listen", "log"], LOG_KEYS);
  if (!log) return { to: { target: "stderr" } };
  const target = c.oneOf(
    log.target,
    ["listen", "log", "target"],
    "stderr",
    [
      "stderr",
      "file",
      "syslog",
    ] as const,
  );
  const format = log.format === undefined
    ? undefined
    : c.oneOf(log.format, ["listen", "log", "format"], "text", ["text", "json"] as const);
  const withFormat = format === undefined ? {} : { format };
  const absolute = (key: "path" | "socket", example: string): string | undefined => {
    const path = log[key];
    if (typeof path === "string" && path.startsWith("/")) return path;
    c.fail(
      ["listen", "log", key],
      `must be an absolute path such as "${example}", received ${describe(path)}`,
    );
    return undefined;
  };
  if (target === "file") {
    const path = absolute("path", "/var/log/sesame/sesame.log");
    return { to: path ? { target, path } : { target: "stderr" }, ...withFormat };
  }
  if (log.path !== undefined) c.fail(["listen", "log", "path"], `only target: file takes a path`);
  if (target === "syslog") {
    const socket = log.socket === undefined ? undefined : absolute("socket", "/dev/log");
    return { to: socket ? { target, socket } : { target }, ...withFormat };
  }
  if (log.socket !== undefined) {
    c.fail(["listen", "log", "socket"], `only target: syslog takes a socket`);
  }
  return { to: { target: "stderr" }, ...withFormat };
}
