/** `sesame listen`: run the knock daemon until SIGINT/SIGTERM; SIGHUP reloads. @module */
import { Daemon } from "../daemon/daemon.ts";
import { controlPath } from "../daemon/control.ts";
import { UsageError } from "../errors.ts";
import type { LogLevel } from "@logtape/logtape";
import type { Config } from "../config/types.ts";
import {
  flushLogging,
  isLogLevel,
  type LogFormat,
  logger,
  reopenLogs,
  setupLogging,
} from "../log.ts";
import { type FlagSpec, type ParsedArgs, parseFlags, stringFlag } from "./args.ts";
import { loadPrivateConfig } from "./common.ts";
import { absolutePath } from "./daemon_client.ts";

/** The flags of `sesame listen`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  config: { type: "string", short: "c" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  "insecure-permissions": { type: "boolean" },
} satisfies FlagSpec;

const log = logger("listen");

/**
 * Reads --log-level and --log-format, shared by listen and demo, and logs to stderr with
 * them; returns them for {@link loggingFromConfig}.
 */
export async function loggingFromFlags(
  parsed: ParsedArgs,
  command: string,
): Promise<{ level: LogLevel; format?: LogFormat }> {
  const level = stringFlag(parsed, "log-level", command) ?? "info";
  const format = stringFlag(parsed, "log-format", command);
  if (!isLogLevel(level)) {
    throw new UsageError(`${command}: --log-level must be trace, debug, info, warning or error`);
  }
  if (format !== undefined && format !== "text" && format !== "json") {
    throw new UsageError(`${command}: --log-format must be text or json`);
  }
  await setupLogging({ level, format: format ?? "text" });
  return { level, ...(format === undefined ? {} : { format }) };
}

/** Logs where the config's `listen.log` says (the flag's format wins over the config's). */
async function loggingFromConfig(
  flags: { level: LogLevel; format?: LogFormat },
  config: Config,
): Promise<void> {
  const format = flags.format ?? config.log.format ?? "text";
  if (config.log.to.target === "stderr" && format === (flags.format ?? "text")) return;
  await setupLogging({ level: flags.level, format, target: config.log.to });
  const to = config.log.to;
  log.info("logging to {target}", {
    target: to.target === "file" ? to.path : to.target === "syslog" ? "syslog" : "stderr",
  });
}

/** Runs `sesame listen`; returns the exit code when the daemon stops. */
export async function listen(args: string[]): Promise<number> {
  const parsed = parseFlags("listen", args, FLAGS);
  const file = stringFlag(parsed, "config", "listen", true);
  const logFlags = await loggingFromFlags(parsed, "listen");
  const insecure = parsed.values["insecure-permissions"] === true;
  // Signals are taken before the daemon starts: a SIGHUP or SIGTERM that arrives while it
  // starts must not kill the process with the default action (the firewall half set up).
  let daemon: Daemon | undefined;
  let stopRequested = false;
  let exitCode = 0;
  const stop = () => {
    stopRequested = true;
    void daemon?.stop();
  };
  // The daemon runs one reload at a time (SIGHUP and "sesame reload" alike) and logs
  // what it refused; a SIGHUP while it starts reloads once it has.
  let reloadAfterStart = false;
  let reloading: Promise<unknown> | undefined;
  const reload = () => {
    if (stopRequested) return; // a SIGHUP during a stop: nothing more is applied
    if (!daemon) {
      reloadAfterStart = true; // still starting, maybe with the config before the edit
      return;
    }
    reloading = daemon.reloadFile();
  };
  // Fail closed on a bug: close every door a command opened, then exit non-zero.
  const crash = (event: ErrorEvent | PromiseRejectionEvent) => {
    event.preventDefault();
    const error = "error" in event ? event.error : event.reason;
    log.fatal("internal error, closing all doors and stopping: {error}", {
      error: String(error?.stack ?? error),
    });
    exitCode = 70;
    stop();
  };
  globalThis.addEventListener("error", crash);
  globalThis.addEventListener("unhandledrejection", crash);
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGHUP", reload);
  Deno.addSignalListener("SIGUSR1", reopenLogs); // logrotate moved the log file
  try {
    const config = await loadPrivateConfig(file, "refuse", insecure);
    await loggingFromConfig(logFlags, config);
    daemon = await Daemon.start({
      config,
      control: await controlPath(),
      // As given, made absolute: a reload reads this path again (a symlink the admin
      // switched included), and clients name it.
      configFile: absolutePath(file),
      loadConfig: () => loadPrivateConfig(file, "refuse", insecure),
    });
    log.info("sesame listening with {file} (pid {pid})", { file, pid: Deno.pid });
    if (stopRequested) void daemon.stop();
    else if (reloadAfterStart) reload();
    await daemon.stopped;
    await reloading;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    Deno.removeSignalListener("SIGHUP", reload);
    Deno.removeSignalListener("SIGUSR1", reopenLogs);
    globalThis.removeEventListener("error", crash);
    globalThis.removeEventListener("unhandledrejection", crash);
  }
  await flushLogging(); // writes the counts of rate-limited lines
  return exitCode;
}
