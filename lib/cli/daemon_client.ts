/**
 * Finding the running daemon for a command (revoke, reload, unban): the one answering on
 * this network namespace's control socket, with the config the admin names.
 * @module
 */
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
  const mine = await Deno.realPath(file);
  if (status.config !== null && status.config !== mine) {
    console.error(
      `sesame ${command}: the daemon here runs with ${status.config}, not ${mine}: give its config`,
    );
    return EXIT.noDaemon;
  }
  return path;
}
