/**
 * Files that hold secrets must not be readable by other users: a config with an inline
 * `secret`, and every `secret_file`. Refused by `listen` and `knock` (with the chmod that
 * fixes it), warned about by `code` and `check`; `--insecure-permissions` overrides (for
 * containers whose volumes cannot carry modes).
 * @module
 */
import { type Config, userDoors } from "./types.ts";
import { resolveSecretPath } from "./load.ts";

/** A file holding a secret that others can read, or that another user owns. */
export interface ExposedSecretFile {
  /** The file. */
  readonly path: string;
  /** Its permission bits. */
  readonly mode: number;
  /** Its owner, when that is not the user sesame runs as (that user can read and change it). */
  readonly owner?: number;
  /** The user sesame runs as. */
  readonly self?: number;
}

/**
 * The files of `config` (read from `file`) that hold a secret and are readable or
 * writable by group or others, or owned by another user than the one sesame runs as.
 *
 * @example
 * ```ts
 * import { exposedSecretFiles } from "./permissions.ts";
 * import { loadConfig } from "./load.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/ssh.key`, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", { mode: 0o644 });
 * await Deno.writeTextFile(`${dir}/s.yaml`, "doors:\n  ssh: { secret_file: ssh.key, ports: 20000-20099 }\n");
 * const exposed = await exposedSecretFiles(`${dir}/s.yaml`, await loadConfig(`${dir}/s.yaml`));
 * assertEquals(exposed.map((e) => e.path), [`${dir}/ssh.key`]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function exposedSecretFiles(
  file: string,
  config: Config,
): Promise<ExposedSecretFile[]> {
  const paths = new Set<string>();
  for (const door of userDoors(config.doors)) {
    if (door.kind === "spa") {
      for (const f of door.spa.keyFiles) paths.add(resolveSecretPath(f, file));
      if (door.spa.keyFiles.length < 2) paths.add(file); // a key inline
      continue;
    }
    if (door.kind !== "rotating") continue;
    paths.add(door.secretFile ? resolveSecretPath(door.secretFile, file) : file);
  }
  // The etcd client key is a door secret too: with it, anyone opens every shared door.
  for (const secret of [config.cluster?.etcd.keyFile, config.cluster?.etcd.passwordFile]) {
    if (secret !== undefined) paths.add(resolveSecretPath(secret, file));
  }
  const exposed: ExposedSecretFile[] = [];
  const self = Deno.uid();
  for (const path of paths) {
    const info = await Deno.stat(path).catch(() => undefined);
    if (!info || info.mode === null) continue;
    const mode = info.mode & 0o777;
    const foreign = self !== null && info.uid !== null && info.uid !== self;
    if ((mode & 0o077) !== 0 || foreign) {
      exposed.push({ path, mode, ...(foreign ? { owner: info.uid!, self: self! } : {}) });
    }
  }
  return exposed;
}

/** One line per exposed file, with the command that fixes it. */
export function describeExposed(exposed: readonly ExposedSecretFile[]): string {
  return exposed.map((e) => {
    if (e.owner !== undefined) {
      return `${e.path} holds a secret and is owned by uid ${e.owner}, not by uid ${e.self} that sesame runs as (that user can read and change it): run chown ${e.self} ${e.path}`;
    }
    return `${e.path} holds a secret and other users can access it (mode ${
      e.mode.toString(8).padStart(4, "0")
    }): run chmod 600 ${e.path}`;
  }).join("\n");
}
