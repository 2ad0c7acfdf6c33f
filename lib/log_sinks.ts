/**
 * Where log lines go besides stderr (`listen.log.target`): a file, appended and reopened
 * on SIGUSR1 so logrotate can move it, or syslog, through util-linux's `logger` (one
 * long-lived process reading lines, each with its own priority), for hosts without
 * journald. Both fall back to stderr for a line they cannot write, so no line is lost
 * silently.
 * @module
 */
import type { LogLevel, LogRecord, Sink } from "@logtape/logtape";

/** Where `listen` logs: stderr (the journal under systemd), a file, or syslog. */
export type LogTarget =
  | { readonly target: "stderr" }
  | { readonly target: "file"; readonly path: string }
  | {
    readonly target: "syslog";
    /** The syslog socket. @default "/dev/log" */
    readonly socket?: string;
  };

/** A sink that can reopen its file, and must be closed. */
export interface TargetSink {
  /** Writes one formatted record. */
  readonly sink: Sink;
  /** Reopens the file (SIGUSR1, after logrotate moved it); a no-op for other targets. */
  reopen(): void;
  /** Flushes and closes. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();

function toStderr(line: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(line));
  } catch { /* nowhere left to say it */ }
}

/**
 * Appends lines to `path` (mode 0600), writing each at once (a crash loses nothing);
 * {@link TargetSink.reopen} opens the path again.
 *
 * @example
 * ```ts
 * import { fileSink } from "./log_sinks.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * const target = fileSink(`${dir}/sesame.log`, (r) => `${r.message.join("")}\n`);
 * target.sink({ message: ["one"] } as never);
 * await Deno.rename(`${dir}/sesame.log`, `${dir}/sesame.log.1`); // logrotate
 * target.reopen();
 * target.sink({ message: ["two"] } as never);
 * await target.close();
 * assertEquals(await Deno.readTextFile(`${dir}/sesame.log.1`), "one\n");
 * assertEquals(await Deno.readTextFile(`${dir}/sesame.log`), "two\n");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function fileSink(path: string, format: (record: LogRecord) => string): TargetSink {
  const open = () => openOwnFile(path);
  let file: Deno.FsFile | undefined = open();
  const write = (line: string) => {
    try {
      file ??= open();
      const bytes = encoder.encode(line);
      let done = 0;
      while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
    } catch (e) {
      toStderr(`cannot write the log file ${path}: ${(e as Error).message}\n${line}`);
      try {
        file?.close();
      } catch { /* closed */ }
      file = undefined; // opened again at the next line
    }
  };
  return {
    sink: (record) => write(format(record)),
    reopen() {
      try {
        file?.close();
      } catch { /* closed */ }
      file = undefined;
      try {
        file = open();
      } catch (e) {
        toStderr(`cannot reopen the log file ${path}: ${(e as Error).message}\n`);
      }
    },
    close() {
      try {
        file?.close();
      } catch { /* closed */ }
      file = undefined;
      return Promise.resolve();
    },
  };
}

/**
 * Opens the log file for appending, refusing what another user could use to make sesame
 * (root) write elsewhere: a symlink or other non-regular file at the path, a file another
 * user owns or may write, a directory others may write (not sticky). The file opened is
 * checked to be the one at the path (no swap between the checks and the open).
 * @throws {Error} naming what is wrong.
 */
export function openOwnFile(path: string): Deno.FsFile {
  const self = Deno.uid();
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const dirInfo = Deno.statSync(dir);
  const dirMode = (dirInfo.mode ?? 0) & 0o7777;
  if (
    (self !== null && dirInfo.uid !== null && dirInfo.uid !== self && dirInfo.uid !== 0) ||
    ((dirMode & 0o002) !== 0 && (dirMode & 0o1000) === 0)
  ) {
    throw new Error(
      `${dir} belongs to another user or others may write it: choose a directory of root's (such as /var/log/sesame)`,
    );
  }
  const before = (() => {
    try {
      return Deno.lstatSync(path);
    } catch {
      return undefined; // created below, 0600
    }
  })();
  if (before && !before.isFile) {
    throw new Error(
      `${path} is not a regular file (${
        before.isSymlink ? "a symbolic link" : "not a file"
      }): sesame never writes through one`,
    );
  }
  if (
    before &&
    ((self !== null && before.uid !== null && before.uid !== self) ||
      ((before.mode ?? 0) & 0o022) !== 0)
  ) {
    throw new Error(
      `${path} belongs to another user or others may change it: remove it, or chown/chmod go-w it`,
    );
  }
  const file = Deno.openSync(path, { append: true, create: true, mode: 0o600 });
  const opened = file.statSync();
  const now = Deno.lstatSync(path);
  if (!now.isFile || now.ino !== opened.ino) {
    file.close();
    throw new Error(`${path} changed while it was being opened`);
  }
  return file;
}

/** syslog severities (RFC 5424) of LogTape's levels. */
const SEVERITY: Record<LogLevel, number> = {
  trace: 7,
  debug: 7,
  info: 6,
  warning: 4,
  error: 3,
  fatal: 2,
};
/** The daemon facility (3), shifted: priority = facility × 8 + severity. */
const DAEMON = 3 * 8;

/**
 * Sends lines to syslog through `logger --prio-prefix` (util-linux, in every Debian),
 * tagged `sesame` with the daemon's PID, facility daemon. A `logger` that died is started
 * again for the next line (at most once a second); a line it cannot take goes to stderr.
 */
export function syslogSink(
  format: (record: LogRecord) => string,
  socket = "/dev/log",
  program = "logger",
): TargetSink {
  let child: Deno.ChildProcess | undefined;
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  let startedAt = -Infinity;
  let chain = Promise.resolve();
  const start = () => {
    if (Date.now() - startedAt < 1000) return undefined;
    startedAt = Date.now();
    try {
      child = new Deno.Command(program, {
        args: ["--prio-prefix", "--tag", "sesame", `--id=${Deno.pid}`, "--socket", socket],
        stdin: "piped",
        stdout: "null",
        stderr: "inherit",
      }).spawn();
      child.unref();
      writer = child.stdin.getWriter();
      void child.status.then(() => {
        writer = undefined;
        child = undefined;
      });
    } catch (e) {
      toStderr(`cannot start ${program} for syslog: ${(e as Error).message}\n`);
      child = undefined;
      writer = undefined;
    }
    return writer;
  };
  const send = (record: LogRecord) => {
    const line = format(record).replace(/\n(?!$)/g, " ");
    const priority = DAEMON + SEVERITY[record.level];
    chain = chain.then(async () => {
      const w = writer ?? start();
      if (!w) return toStderr(line);
      try {
        await w.write(encoder.encode(`<${priority}>${line}`));
      } catch {
        writer = undefined;
        toStderr(line);
      }
    });
  };
  return {
    sink: send,
    reopen() {},
    async close() {
      await chain;
      try {
        await writer?.close();
      } catch { /* gone */ }
      await child?.status;
    },
  };
}
