/** Helpers shared by the commands that read a config. @module */
import { parseAddress } from "../address.ts";
import type { Address } from "../address.ts";
import { type Config, type Door, userDoors } from "../config/types.ts";
import { ConfigError, UsageError } from "../errors.ts";
import { loadConfig } from "../config/load.ts";
import { describeExposed, exposedSecretFiles } from "../config/permissions.ts";

/**
 * The door called `name` (the only door when `name` is not given), or a UsageError listing
 * the doors there are.
 */
export function findDoor(
  config: Config,
  name: string | undefined,
  command: string,
  user?: string,
): Door {
  const door = findNamedDoor(config, name, command);
  if (door.kind !== "rotating" || !door.users) {
    if (user !== undefined) throw new UsageError(`${command}: door ${door.name} has no users`);
    return door;
  }
  const names = door.users.map((u) => u.name).join(", ");
  if (user === undefined) {
    throw new UsageError(
      `${command}: door ${door.name} has users (${names}), each with their own codes: ${
        command === "code" ? "give --user NAME" : "use that user's client config"
      }`,
    );
  }
  const found = userDoors([door]).find((d) => d.kind === "rotating" && d.user === user);
  if (!found) {
    throw new UsageError(`${command}: door ${door.name} has no user "${user}" (users: ${names})`);
  }
  return found;
}

function findNamedDoor(config: Config, name: string | undefined, command: string): Door {
  if (name === undefined) {
    if (config.doors.length === 1) return config.doors[0];
    throw new UsageError(
      `${command}: --door is required: the config has ${config.doors.length} doors (${
        config.doors.map((d) => d.name).join(", ")
      })`,
    );
  }
  const door = config.doors.find((d) => d.name === name);
  if (!door) {
    throw new UsageError(
      `${command}: no door ${JSON.stringify(name)} in the config; doors: ${
        config.doors.map((d) => d.name).join(", ")
      }`,
    );
  }
  return door;
}

/** Parses an address flag, or a UsageError naming the flag. */
export function addressFlag(value: string | undefined, flag: string): Address | undefined {
  if (value === undefined) return undefined;
  const address = parseAddress(value);
  if (!address) {
    throw new UsageError(`${flag}: ${JSON.stringify(value)} is not an IPv4 or IPv6 address`);
  }
  return address;
}

/** ISO-8601 text for ms since the epoch. */
export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/**
 * Loads a config and checks that the files holding its secrets are private: `refuse`
 * throws a ConfigError naming the chmod that fixes it (unless `insecure`), `warn` prints it.
 */
export async function loadPrivateConfig(
  file: string,
  policy: "refuse" | "warn",
  insecure: boolean,
): Promise<Config> {
  const config = await loadConfig(file);
  if (insecure) return config;
  const exposed = await exposedSecretFiles(file, config);
  if (exposed.length === 0) return config;
  if (policy === "warn") {
    console.error(`warning: ${describeExposed(exposed)}`);
    return config;
  }
  throw new ConfigError(exposed.map((e) => ({
    path: "",
    message: `${describeExposed([e])} (or pass --insecure-permissions where modes cannot be set)`,
  })));
}

/**
 * The client config a user keeps for `knock` and `code` when they name none:
 * `$XDG_CONFIG_HOME/sesame/client.yaml`, else `~/.config/sesame/client.yaml`, whichever
 * exists first; undefined when neither does.
 *
 * @example
 * ```ts
 * import { defaultClientConfig } from "./common.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/sesame`);
 * await Deno.writeTextFile(`${dir}/sesame/client.yaml`, "doors: {}\n");
 * const env = (name: string) => name === "XDG_CONFIG_HOME" ? dir : undefined;
 * assertEquals(defaultClientConfig(env), `${dir}/sesame/client.yaml`);
 * assertEquals(defaultClientConfig(() => undefined), undefined);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function defaultClientConfig(env: (name: string) => string | undefined): string | undefined {
  const homes = [env("XDG_CONFIG_HOME"), env("HOME") && `${env("HOME")}/.config`];
  for (const home of homes) {
    if (!home) continue;
    const path = `${home}/sesame/client.yaml`;
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch { /* not there */ }
  }
  return undefined;
}
