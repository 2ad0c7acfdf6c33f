/**
 * One daemon per firewall. What two daemons would fight over (the `inet sesame` table, the
 * SESAME chain, the knock ports) belongs to a network namespace, so the lock does too: an
 * exclusive `flock` on `/run/sesame/net-<namespace inode>.lock`, holding the holder's PID.
 * The kernel drops it when the process dies, so a SIGKILLed daemon never blocks its
 * restart, and daemons in two namespaces never block each other.
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
  /** Releases the lock. */
  release(): void;
}

/**
 * Takes the lock of this network namespace, or throws naming the PID that holds it.
 * @throws {ConfigError} when another `sesame listen` holds it.
 */
export async function takeInstanceLock(dir: string = LOCK_DIR): Promise<InstanceLock> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const path = `${dir}/net-${await netNamespaceId() ?? "default"}.lock`;
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
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  return {
    path,
    release() {
      try {
        file.close(); // closing the descriptor releases the flock
      } catch { /* closed */ }
    },
  };
}
