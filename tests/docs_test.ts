/**
 * Every config key the validator takes is in the README's key table and has its heading in
 * docs/CONFIG.md (from which `man sesame.yaml` is generated); the README stays short
 * enough to read to the end.
 */
import { assert } from "./_assert.ts";
import {
  CLUSTER_KEYS,
  DOOR_KEYS,
  ETCD_KEYS,
  LISTEN_KEYS,
  OPEN_KEYS,
  ROTATING_KEYS,
  TOP_KEYS,
} from "../lib/config/schema.ts";

const root = new URL("..", import.meta.url);
const readme = await Deno.readTextFile(new URL("README.md", root));
const config = await Deno.readTextFile(new URL("docs/CONFIG.md", root));

/** The first column of the README's key table (the rows whose key is in backquotes). */
const tableKeys = readme.split("\n").filter((l) => /^\| `/.test(l)).map((l) => l.split("|")[1]);
const headings = config.split("\n").filter((l) => l.startsWith("### "));

/** The dotted paths of every key the validator knows, as the docs name them. */
function keyPaths(): string[] {
  const paths = [
    ...TOP_KEYS.filter((k) => k !== "listen" && k !== "doors" && k !== "cluster"),
    ...LISTEN_KEYS.map((k) => `listen.${k}`),
    ...CLUSTER_KEYS.filter((k) => k !== "etcd").map((k) => `cluster.${k}`),
    ...ETCD_KEYS.map((k) => `cluster.etcd.${k}`),
  ];
  const door = [...new Set([...ROTATING_KEYS, ...DOOR_KEYS])].filter((k) => k !== "open");
  paths.push(...door.map((k) => `doors.N.${k}`));
  paths.push(...OPEN_KEYS.filter((k) => k !== "iptables" || true).map((k) => `doors.N.open.${k}`));
  return paths;
}

/** True when `path`'s last part is named in `cell` as the path or beside it (`a`, `b`). */
function names(cell: string, path: string): boolean {
  const last = path.slice(path.lastIndexOf(".") + 1);
  return cell.includes(`\`${path}\``) ||
    (cell.includes(`\`${last}\``) && cell.includes(path.slice(0, path.lastIndexOf(".") + 1)));
}

Deno.test("every config key is in the README's table and has its heading in docs/CONFIG.md", () => {
  const missing = keyPaths().filter((path) => !tableKeys.some((cell) => names(cell, path)));
  assert(missing.length === 0, `not in the README's key table: ${missing.join(", ")}`);
  const undocumented = keyPaths().filter((path) => !headings.some((h) => names(h, path)));
  assert(undocumented.length === 0, `no heading in docs/CONFIG.md: ${undocumented.join(", ")}`);
});

Deno.test("the README is one a newcomer reads to the end: under 300 lines, no table cell a pager cannot show", () => {
  const lines = readme.split("\n");
  assert(lines.length < 300, `README.md has ${lines.length} lines`);
  const wide = lines.filter((l) => l.startsWith("|") && l.length > 160);
  assert(wide.length === 0, `table rows wider than 160 characters: ${wide.length}`);
});
