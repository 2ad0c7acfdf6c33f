/**
 * Loading a config from YAML text or a file, keeping line/column positions so every
 * issue reads `file:line:column: key: message`.
 * @module
 */
import { isMap, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { ConfigError, type SourcePosition } from "../errors.ts";
import type { Config } from "./types.ts";
import type { KeyPath } from "./checker.ts";
import { validateConfig } from "./validate.ts";

/** Options for {@link parseConfig}. */
export interface ParseConfigOptions {
  /** Reads a `secret_file`. @default reads nothing: secret files are refused */
  readSecretFile?: (path: string) => string;
}

/** Most alias expansions a document may make: defeats "billion laughs" documents. */
const MAX_ALIAS_COUNT = 100;

/**
 * Parses and validates YAML config text.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./load.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const config = parseConfig("doors:\n  legacy:\n    sequence: [7000, 8000, 9000]\n", "inline.yaml");
 * assertEquals(config.doors[0].kind === "static" && config.doors[0].sequence.map((k) => k.port), [7000, 8000, 9000]);
 * ```
 * @throws {ConfigError} with located issues.
 */
export function parseConfig(text: string, file: string, options: ParseConfigOptions = {}): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): SourcePosition => {
    const { line, col } = lines.linePos(offset);
    return { file, line, column: col };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({
      path: "",
      message: yamlMessage(e.message),
      position: at(e.pos[0]),
    })));
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    // Alias bombs and similar are thrown here, outside doc.errors and without a position.
    throw new ConfigError([{
      path: "",
      message: `cannot be read: ${(e as Error).message}`,
      position: at(0),
    }]);
  }
  const locate = (path: KeyPath, atKey: boolean): SourcePosition | undefined => {
    let node: unknown = doc.contents;
    let offset = (node as Node | null)?.range?.[0] ?? 0;
    for (let i = 0; i < path.length; i++) {
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) =>
          String((p.key as { value?: unknown })?.value ?? p.key) === String(path[i])
        );
        if (!pair) break;
        const keyNode = pair.key as Node | null;
        const target = last && atKey ? keyNode : (pair.value as Node | null) ?? keyNode;
        offset = target?.range?.[0] ?? offset;
        node = pair.value;
      } else if (isSeq(node) && typeof path[i] === "number") {
        const item = node.items[path[i] as number] as Node | undefined;
        if (!item) break;
        offset = item.range?.[0] ?? offset;
        node = item;
      } else break;
    }
    return at(offset);
  };
  return validateConfig(raw, { locate, readSecretFile: options.readSecretFile });
}

/**
 * Reads and validates a config file. Secret files are read relative to the working directory.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./load.ts";
 * import { ConfigError } from "../errors.ts";
 * import { rejects } from "node:assert/strict";
 * const file = await Deno.makeTempFile({ suffix: ".yaml" });
 * await Deno.writeTextFile(file, "doors:\n  ssh:\n    length: 4\n");
 * await rejects(loadConfig(file), (e) => e instanceof ConfigError && e.message.includes(":2:3: doors.ssh: a rotating door needs"));
 * await Deno.remove(file);
 * ```
 * @throws {ConfigError} when the file cannot be read or is invalid.
 */
export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new ConfigError([{
      path: "",
      message: `cannot read config file ${JSON.stringify(file)}: ${errorText(e)}`,
    }]);
  }
  return parseConfig(text, file, {
    readSecretFile: (path) => readSecretFile(resolveSecretPath(path, file)),
  });
}

/** Most bytes a secret file may hold: one line of base64url, with room to spare. */
const MAX_SECRET_FILE = 4096;

/**
 * Reads a secret file: a regular file of at most 4 KiB (`/dev/zero`, a directory or a
 * large file is an error, never a hang or a crash).
 */
function readSecretFile(path: string): string {
  const file = Deno.openSync(path, { read: true });
  try {
    if (!file.statSync().isFile) throw new Error("not a regular file");
    const buffer = new Uint8Array(MAX_SECRET_FILE + 1);
    let length = 0;
    while (length < buffer.length) {
      const n = file.readSync(buffer.subarray(length));
      if (n === null || n === 0) break;
      length += n;
    }
    if (length > MAX_SECRET_FILE) {
      throw new Error(
        `larger than ${MAX_SECRET_FILE} bytes: a secret file holds one line, as sesame keygen writes it`,
      );
    }
    return new TextDecoder().decode(buffer.subarray(0, length));
  } finally {
    file.close();
  }
}

/**
 * Where a `secret_file` is: `~/` is the home directory, a relative path is relative to the
 * config file's directory (so a config and its key can move together).
 *
 * @example
 * ```ts
 * import { resolveSecretPath } from "./load.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(resolveSecretPath("ssh.key", "/etc/sesame/sesame.yaml"), "/etc/sesame/ssh.key");
 * assertEquals(resolveSecretPath("/srv/k", "/etc/sesame/sesame.yaml"), "/srv/k");
 * ```
 */
export function resolveSecretPath(path: string, configFile: string): string {
  if (path.startsWith("~/")) return `${Deno.env.get("HOME") ?? ""}${path.slice(1)}`;
  if (path.startsWith("/")) return path;
  const dir = configFile.includes("/") ? configFile.slice(0, configFile.lastIndexOf("/") + 1) : "";
  return dir + path;
}

function errorText(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  return (e as Error).message;
}

/**
 * The yaml library's messages end in a code excerpt and may quote the offending token,
 * which can be a secret: keep the first line, without quoted text (the position says where).
 */
function yamlMessage(message: string): string {
  return message.split("\n")[0]
    .replace(/ at line \d+, column \d+.*$/, "")
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'/g, "(value hidden)");
}
