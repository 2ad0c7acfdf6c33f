/**
 * Finding the running daemon for a command (revoke, reload, unban): the one answering on
 * this network namespace's control socket, with the config the admin names.
 * @module
 */
import { resolve } from "node:path";
import { askDaemon, controlPath } from "../daemon/control.ts";
import { EXIT } from "./main.ts";

/**
 * The control socket's path when the daemon there runs with `file`; otherwise prints
 * why not and returns {@link EXIT.noDaemon}.
 */
export async function reachDaemon(command: string, file: string): Promise<string | number> {
  const path = await controlPath();
  const status = await askDaemon(path, { op: "status" });
  if (!status?.ok) {
    console.error(
      `sesame ${command}: no sesame listen answers at ${path} in this network namespace`,
    );
    return EXIT.noDaemon;
  }
  if (typeof status.config === "string" && !(await sameConfig(file, status.config))) {
    console.error(
      `sesame ${command}: the daemon here runs with ${status.config}, not ${
        absolutePath(file)
      }: give its config`,
    );
    return EXIT.noDaemon;
  }
  return path;
}

/** `file` made absolute, symlinks left as they are (what the daemon reads on a reload). */
export function absolutePath(file: string): string {
  return resolve(file);
}

/**
 * True when `file` names the daemon's config: the same path, or the same file now (a
 * symlink the admin switched names the daemon's path; a relative path names it from here).
 */
export async function sameConfig(file: string, daemonConfig: string): Promise<boolean> {
  if (absolutePath(file) === daemonConfig) return true;
  const [a, b] = await Promise.all([
    Deno.realPath(file).catch(() => undefined),
    Deno.realPath(daemonConfig).catch(() => undefined),
  ]);
  return a !== undefined && a === b;
}
