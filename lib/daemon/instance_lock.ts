/**
 * One daemon per firewall. What two daemons would fight over (the `inet sesame` table, the
 * SESAME chain, the knock ports) belongs to a network namespace, so the lock does too: an
 * exclusive `flock` on `/run/sesame/net-<namespace inode>.lock`, holding the holder's PID.
 * The kernel drops it when the process dies, so a SIGKILLed daemon never blocks its
 * restart, and daemons in two namespaces never block each other. A clean stop removes
 * the file (nothing is left in /run/sesame).
 * @module
 */
import { ConfigError } from "../errors.ts";
import { netNamespaceId } from "../system.ts";

/** Where the locks live: systemd's `RuntimeDirectory=sesame`, created when missing. */
export const LOCK_DIR = "/run/sesame";

/** A held instance lock. */
export interface InstanceLock {
  /** The lock file. */
  readonly path: string;
  /** Releases the lock and removes its file. */
  release(): void;
}

/**
 * Takes the lock of this network namespace, or throws naming the PID that holds it.
 * @throws {ConfigError} when another `sesame listen` holds it.
 */
export async function takeInstanceLock(dir: string = LOCK_DIR): Promise<InstanceLock> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const path = `${dir}/net-${await netNamespaceId() ?? "default"}.lock`;
  // A clean stop removes the file while it holds the lock: a daemon that opened the old
  // file just before may get its lock, on a file no longer at the path. So a lock counts
  // only when the file locked is the one at the path; otherwise try again.
  for (let attempt = 0;; attempt++) {
    const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
    if (!(await file.tryLock(true))) {
      const holder = (await Deno.readTextFile(path).catch(() => "")).trim() || "unknown";
      file.close();
      throw new ConfigError([{
        path: "",
        message:
          `another sesame listen (pid ${holder}) runs in this network namespace and holds ${path}: one instance per firewall. Stop it first (systemctl stop sesame), or reload it (SIGHUP) to change its config`,
      }]);
    }
    const locked = await file.stat();
    const atPath = await Deno.stat(path).catch(() => undefined);
    if (atPath?.ino !== locked.ino && attempt < 10) {
      file.close();
      continue;
    }
    await file.truncate(0);
    await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
    return {
      path,
      release() {
        try {
          Deno.removeSync(path); // still held: nobody else can be using this file
        } catch { /* gone already */ }
        try {
          file.close(); // closing the descriptor releases the flock
        } catch { /* closed */ }
      },
    };
  }
}
