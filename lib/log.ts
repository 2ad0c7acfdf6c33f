/**
 * Logging through LogTape: one line per event, text or JSON lines, on stderr (stdout stays
 * for command output) or, for `listen`, a file or syslog ({@link LogTarget}). Warnings and
 * debug lines are rate-limited per message so a flood cannot fill a disk; door opens and
 * closes at info are never dropped.
 * @module
 */
import {
  configure,
  dispose,
  getConsoleSink,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  getThrottlingFilter,
  type Logger,
  type LogLevel,
  type LogRecord,
  type Sink,
} from "@logtape/logtape";
import { fileSink, type LogTarget, syslogSink, type TargetSink } from "./log_sinks.ts";
import { ConfigError } from "./errors.ts";

export type { LogTarget };

/** Log output formats. */
export type LogFormat = "text" | "json";

/** Options for {@link setupLogging}. */
export interface LoggingOptions {
  /** Lowest level written. @default "info" */
  level?: LogLevel;
  /** Output format. @default "text" */
  format?: LogFormat;
  /** Lines of one message (template) allowed per 10 s before suppression. @default 20 */
  limitPer10s?: number;
  /** Where lines go. @default stderr */
  target?: LogTarget;
}

let target: TargetSink | undefined;

/** The log file's sink, or a ConfigError that names the key and says why it cannot be opened. */
function openLogFile(path: string, format: (record: LogRecord) => string): TargetSink {
  try {
    return fileSink(path, format);
  } catch (e) {
    throw new ConfigError([{
      path: "listen.log.path",
      message: `cannot open ${path} to append the log: ${
        (e as Error).message
      } (under the unit, a path in /var/log/sesame/ is writable: LogsDirectory=sesame)`,
    }]);
  }
}

/** Reopens the log file (SIGUSR1 after logrotate moved it); a no-op for other targets. */
export function reopenLogs(): void {
  target?.reopen();
}

let throttle: (((record: LogRecord) => boolean) & Disposable) | undefined;

const LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warning", "error", "fatal"];

/** True when `level` is a LogTape level name. */
export function isLogLevel(level: string): level is LogLevel {
  return (LEVELS as readonly string[]).includes(level);
}

/**
 * Configures logging for the process (replacing any earlier configuration).
 *
 * @example
 * ```ts
 * import { flushLogging, logger, setupLogging } from "./log.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * await setupLogging({ level: "warning", format: "json" });
 * assertEquals(logger("daemon").isEnabledFor("info"), false); // below the level: not written
 * logger("daemon").info("not written");
 * await flushLogging();
 * ```
 */
export async function setupLogging(options: LoggingOptions = {}): Promise<void> {
  const toStderr = Object.fromEntries(LEVELS.map((l) => [l, "error"])) as Record<LogLevel, "error">;
  const toSyslog = options.target?.target === "syslog";
  const json = getJsonLinesFormatter({
    categorySeparator: ".",
    message: "rendered",
    properties: "flatten",
  });
  const formatter = options.format === "json"
    ? (record: LogRecord) => json({ ...record, message: [jsonMessage(record.message)] })
    : getTextFormatter({
      // syslog stamps each line itself.
      timestamp: toSyslog ? "none" : "date-time-tz",
      level: "ABBR",
      category: ".",
      value: renderValue,
    });
  await target?.close();
  const wanted = options.target;
  target = wanted?.target === "file"
    ? openLogFile(wanted.path, formatter)
    : wanted?.target === "syslog"
    ? syslogSink(formatter, wanted.socket)
    : undefined;
  const out: Sink = target?.sink ?? getConsoleSink({ formatter, levelMap: toStderr });
  throttle = getThrottlingFilter({
    limit: options.limitPer10s ?? 20,
    windowMs: 10_000,
    summary: {
      logger: getLogger(["sesame", "log"]),
      // Names the line it suppressed: its template, braces escaped so nothing is substituted.
      message: (summary) =>
        `suppressed {suppressed} more lines like: ${
          templateOf(summary.lastRecord).replaceAll("{", "{{").replaceAll("}", "}}")
        }`,
    },
  });
  await configure({
    reset: true,
    sinks: { stderr: out },
    filters: {
      // Opens, closes and start-up lines are info: never dropped. So are the per-knock
      // debug lines (--log-level debug promises every knock). Everything else is limited.
      limit: (record: LogRecord) =>
        record.level === "info" || record.category[1] === "log" ||
        record.category[1] === "knock" || throttle!(record),
    },
    loggers: [
      {
        category: ["sesame"],
        lowestLevel: options.level ?? "info",
        sinks: ["stderr"],
        filters: ["limit"],
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** Emits the summaries of rate-limited lines and flushes the sinks (the end of a run). */
export async function flushLogging(): Promise<void> {
  throttle?.[Symbol.dispose]();
  await dispose();
  await target?.close();
  target = undefined;
}

/**
 * A JSON line's message: values as they are, text unquoted (the line is JSON-escaped as
 * a whole; quoting text inside it only adds backslashes: `"at http://\"::1\":9464"`).
 */
function jsonMessage(message: readonly unknown[]): string {
  let out = "";
  for (let i = 0; i < message.length; i++) {
    const part = message[i];
    out += i % 2 === 0 || typeof part === "string" ? String(part) : renderValue(part);
  }
  return out;
}

/**
 * How a value appears inside a text line: a plain token (an address, a door's name, a
 * reason, a time, a number) as it is; anything else quoted as JSON, so a value from a
 * packet or a file can hold neither a line break nor a space that ends the field: no
 * value can forge another line, or another field of its own line, that a log reader such
 * as fail2ban would take for sesame's.
 *
 * @example
 * ```ts
 * import { renderValue } from "./log.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(renderValue("192.0.2.7"), "192.0.2.7");
 * assertEquals(renderValue("a b\n[INF] x"), '"a b\\n[INF] x"');
 * assertEquals(renderValue(42), "42");
 * ```
 */
export function renderValue(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "string") return SAFE_TOKEN.test(value) ? value : JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return JSON.stringify(String(value));
  }
}

/** A value shown bare: letters, digits and the punctuation of addresses, times and names. */
const SAFE_TOKEN = /^[A-Za-z0-9._:@/+=%-]+$/;

/** A record's message template, values left as `{}`. */
function templateOf(record: LogRecord): string {
  return typeof record.rawMessage === "string" ? record.rawMessage : record.rawMessage.join("{}");
}

/**
 * The logger of a part of sesame, e.g. `logger("daemon")`.
 *
 * @example
 * ```ts
 * import { logger } from "./log.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(logger("daemon").category, ["sesame", "daemon"]);
 * ```
 */
export function logger(part: string): Logger {
  return getLogger(["sesame", part]);
}
