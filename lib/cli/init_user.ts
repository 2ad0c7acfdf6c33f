/**
 * `sesame init --user`: adds a user to a door of an existing server config. The file is
 * edited where the change is (the door's `users:` block, the secret that moves into it,
 * the header line init wrote), so the admin's comments, alignment and layout stay; the
 * result is checked against the same edit made on the parsed document.
 * @module
 */
import { isAlias, isMap, parseDocument, YAMLMap } from "yaml";
import type { Document, Pair, Scalar } from "yaml";
import { loadConfig, parseConfig, resolveSecretPath } from "../config/load.ts";
import { DOOR_NAME, ROTATING_KEYS } from "../config/schema.ts";
import { UsageError } from "../errors.ts";
import { generateSecret } from "../secret.ts";
import { type ParsedArgs, stringFlag } from "./args.ts";
import { writeSecretFile } from "./init_files.ts";

/** The pool keys a user's client config copies from the server's door: all but the secrets. */
const CLIENT_KEYS = ROTATING_KEYS.filter((k) => !["secret", "secret_file", "users"].includes(k));

/**
 * `sesame init --user NAME [--door DOOR] [--out SERVER.yaml] [--client FILE]`: adds a user
 * with a fresh secret (`DOOR-NAME.key`, 0600) to a door with `users` in an existing server
 * config (comments kept), and writes that user's client config. The new config is loaded
 * and checked before it replaces the old one; nothing changes when it would not load.
 */
export async function addUser(parsed: ParsedArgs, user: string): Promise<number> {
  const out = stringFlag(parsed, "out", "init") ?? "sesame.yaml";
  const door = stringFlag(parsed, "door", "init") ?? "ssh";
  const host = stringFlag(parsed, "host", "init") ?? "SERVER";
  if (!DOOR_NAME.test(user)) {
    throw new UsageError(`init: --user must be 1–32 letters, digits, "_" or "-"`);
  }
  const client = stringFlag(parsed, "client", "init") ??
    out.replace(/[^/]*$/, `${door}-${user}-client.yaml`);
  let text: string;
  try {
    text = await Deno.readTextFile(out);
  } catch (e) {
    throw new UsageError(
      `init --user: cannot read the server config ${out}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const doc = parseDocument(text);
  const original = parseDocument(text);
  const node = doc.getIn(["doors", door], true);
  if (isAlias(node) || (isMap(node) && node.anchor)) throw sharedNode(out, door, "the door");
  if (!isMap(node)) throw new UsageError(`init --user: ${out} has no door "${door}"`);
  const usersNode = node.get("users", true);
  if (isAlias(usersNode) || (isMap(usersNode) && usersNode.anchor)) {
    throw sharedNode(out, door, "its users");
  }
  if (node.has("sequence")) {
    throw new UsageError(
      `init --user: door "${door}" is a static door: users need a rotating door`,
    );
  }
  const first = stringFlag(parsed, "first-user", "init");
  if (!node.has("users")) {
    // A door with one secret becomes a door with users: that secret is its first user's.
    if (first === undefined) {
      throw new UsageError(
        `init --user: door "${door}" has one secret, not users: give --first-user NAME, the name of whoever holds that secret now (it moves under "users:" unchanged, and their client config keeps working)`,
      );
    }
    if (!DOOR_NAME.test(first) || first === user) {
      throw new UsageError(`init --user: --first-user must be a user name other than --user`);
    }
    const moved = new YAMLMap();
    moved.flow = true;
    for (const key of ["secret", "secret_file"]) {
      if (node.has(key)) {
        moved.set(key, node.get(key));
        node.delete(key);
      }
    }
    const firstUsers = new YAMLMap();
    firstUsers.set(first, moved);
    node.set("users", firstUsers);
  } else if (first !== undefined) {
    throw new UsageError(
      `init --user: door "${door}" has users already: --first-user is not needed`,
    );
  }
  const users = node.get("users");
  if (!isMap(users)) throw new UsageError(`init --user: doors.${door}.users is not a mapping`);
  if (users.has(user)) {
    throw new UsageError(`init --user: door "${door}" has a user "${user}" already`);
  }
  const keyName = `${door}-${user}.key`;
  const dir = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) || "/" : ".";
  const key = `${dir}/${keyName}`;
  // Never a file another door or user reads its secret from, --force or not.
  const taken = secretFiles(doc.toJS()).map((f) => resolveSecretPath(f, out));
  if (taken.includes(resolveSecretPath(keyName, out))) {
    throw new UsageError(
      `init --user: ${key} is the secret_file of another door or user in ${out}: choose another user name`,
    );
  }
  const entry = new YAMLMap();
  entry.flow = true;
  entry.set("secret_file", keyName);
  users.set(user, entry);
  const secret = generateSecret();
  const force = parsed.values.force === true;
  await writeSecretFile(key, secret + "\n", force);
  const pending = `${out}.new-${Deno.pid}`;
  try {
    await writeSecretFile(
      pending,
      editedText(text, original, doc, door, user, keyName, first),
      true,
    );
    const config = await loadConfig(pending); // the whole config, secrets and all, as listen reads it
    if (!config.doors.some((d) => d.name === door)) throw new Error(`door ${door} vanished`);
    const pool = Object.fromEntries(
      CLIENT_KEYS.flatMap((k) => node.has(k) ? [[k, doc.getIn(["doors", door, k])]] : []),
    );
    const clientText =
      `# sesame client config for user "${user}" of door "${door}", written by "sesame init --user". Keep it mode 0600.
doors:
  ${door}:
    secret: "${secret}"
${Object.entries(pool).map(([k, v]) => `    ${k}: ${JSON.stringify(toPlain(v))}`).join("\n")}
`;
    parseConfig(clientText, client);
    await writeSecretFile(client, clientText, force);
    await Deno.rename(pending, out);
  } catch (e) {
    await Deno.remove(pending).catch(() => {});
    await Deno.remove(key).catch(() => {});
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      `init --user: the config would not load, nothing changed: ${(e as Error).message}`,
      { cause: e },
    );
  }
  console.log(`added user "${user}" to door "${door}" in ${out}; their secret is in ${key} (0600)`);
  console.log(`wrote ${client} (${user}'s client config, mode 0600): give it to ${user} securely`);
  console.log(
    `\nreload the daemon to let ${user} in:  systemctl reload sesame   (or: kill -HUP <pid>)`,
  );
  const protect = node.getIn(["open", "nft", "port"]) ?? node.getIn(["open", "iptables", "port"]);
  console.log(
    `on ${user}'s machine, with that file:  sesame knock ${host} -c ${
      client.replace(/.*\//, "")
    } --door ${door}${typeof protect === "number" ? ` --wait-open ${protect}` : ""}`,
  );
  return 0;
}

/** Every `secret_file` of a config document (doors and users). */
function secretFiles(raw: unknown): string[] {
  const doors = (raw as { doors?: Record<string, unknown> })?.doors ?? {};
  return Object.values(doors).flatMap((d) => {
    const door = (d ?? {}) as { secret_file?: unknown; users?: Record<string, unknown> };
    const users = Object.values(door.users ?? {}) as { secret_file?: unknown }[];
    return [door.secret_file, ...users.map((u) => u?.secret_file)].filter((f): f is string =>
      typeof f === "string"
    );
  });
}

function toPlain(value: unknown): unknown {
  return value && typeof value === "object" && "toJSON" in value
    ? (value as { toJSON(): unknown }).toJSON()
    : value;
}

/** A door or users block shared with another through a YAML anchor: an edit reaches both. */
function sharedNode(out: string, door: string, what: string): UsageError {
  return new UsageError(
    `init --user: in ${out}, ${what} of door "${door}" ${
      what === "the door" ? "is" : "are"
    } shared through a YAML anchor (&name / *name): a user added here would be added to every door that shares them. Edit the file by hand`,
  );
}

/** Line start of `offset` in `text`. */
function lineStart(text: string, offset: number): number {
  return text.lastIndexOf("\n", offset - 1) + 1;
}

/** Just past the newline that ends the line holding `offset` (or the end of `text`). */
function lineEnd(text: string, offset: number): number {
  const nl = text.indexOf("\n", offset);
  return nl < 0 ? text.length : nl + 1;
}

/**
 * The config text with the user added in place: for a door with users, one line after
 * its last user; for a door with one secret, that secret's line moved into a new
 * `users:` block (first user) at the end of the door, with the new user after it. Falls
 * back to the document's own rendering (comments kept, layout normalised) when the text
 * is laid out in a way these edits do not handle (flow mappings), or when the edited text
 * would not mean exactly what the edited document does.
 */
function editedText(
  text: string,
  original: Document,
  edited: Document,
  door: string,
  user: string,
  keyName: string,
  first: string | undefined,
): string {
  const fallback = () => edited.toString();
  const node = original.getIn(["doors", door], true);
  if (!isMap(node) || node.flow || !node.range) return fallback();
  const indent = " ".repeat(node.range[0] - lineStart(text, node.range[0]));
  const entry = (name: string, secret: string) => `${name}: { ${secret} }`;
  let out: string;
  const users = node.get("users", true);
  if (isMap(users)) {
    if (users.flow || !users.range) return fallback();
    const at = lineEnd(text, users.range[1] - 1);
    const userIndent = " ".repeat(users.range[0] - lineStart(text, users.range[0]));
    out = text.slice(0, at) + `${userIndent}${entry(user, `secret_file: ${keyName}`)}\n` +
      text.slice(at);
  } else {
    // The door's one secret (secret or secret_file) moves to its first user.
    const pairs = (node.items as Pair<Scalar, Scalar>[]).filter((p) =>
      ["secret", "secret_file"].includes(String(p.key?.value))
    );
    if (pairs.length !== 1 || !pairs[0].key.range || !pairs[0].value?.range) return fallback();
    const [pair] = pairs;
    const secret = `${pair.key.value}: ${text.slice(pair.value!.range![0], pair.value!.range![1])}`;
    const from = lineStart(text, pair.key.range![0]);
    const to = lineEnd(text, pair.value!.range![1] - 1);
    const end = lineEnd(text, node.range[1] - 1);
    const block = `${indent}users:\n${indent}  ${entry(first!, secret)}\n` +
      `${indent}  ${entry(user, `secret_file: ${keyName}`)}\n`;
    out = text.slice(0, from) + text.slice(to, end) + block + text.slice(end);
    out = updateHeader(out, door);
  }
  const same = JSON.stringify(parseDocument(out).toJS()) === JSON.stringify(edited.toJS());
  return same ? out : fallback();
}

/** init's header named the door's one key file; with users each has their own. */
function updateHeader(text: string, door: string): string {
  const lines = text.split("\n");
  if (!lines[0].startsWith(`# sesame server config, written by "sesame init". Its secret is in`)) {
    return text;
  }
  lines.splice(
    0,
    2,
    `# sesame server config, written by "sesame init"; users added by "sesame init --user".`,
    `# Door "${door}" has users, each with a secret file beside this one (mode 0600): rotate one with "sesame keygen --out FILE --force" and a reload.`,
  );
  return lines.join("\n");
}
