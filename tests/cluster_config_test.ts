/**
 * The `cluster` section and the doors' `share` and `fleet`: what is taken, what is refused
 * and where (file:line:column), and how the keys etcd holds are laid out.
 */
import { assert, assertEquals } from "./_assert.ts";
import { parseConfig } from "../lib/config/load.ts";
import { ConfigError } from "../lib/errors.ts";
import { assertReloadable } from "../lib/daemon/reloads.ts";
import { SECRET_B64 } from "./_daemon.ts";
import {
  counterText,
  grantKey,
  grantValue,
  markKey,
  parseCounter,
  readDoorsEntry,
} from "../lib/cluster/fleet_keys.ts";

const door = `doors:
  ssh:
    secret: ${SECRET_B64}
    ports: 20000-20999
    share: web
    open: { nft: { port: 22 } }
`;

function issues(text: string): string[] {
  try {
    parseConfig(text, "s.yaml");
  } catch (e) {
    assert(e instanceof ConfigError);
    return e.message.split("\n");
  }
  throw new Error("accepted");
}

Deno.test("cluster: a gateway's settings, with the defaults, and its doors' share and fleet", () => {
  const config = parseConfig(
    `cluster:
  node: gw1
  groups: [web, web, admin]
  etcd: { endpoints: ["https://10.0.0.11:2379/", "https://[fd00::1]:2379"] }
${door}`,
    "s.yaml",
  );
  assertEquals(config.cluster, {
    node: "gw1",
    groups: ["web", "admin"],
    etcd: {
      endpoints: ["https://10.0.0.11:2379", "https://[fd00::1]:2379"],
      prefix: "/sesame/",
      timeoutMs: 2000,
    },
  });
  assertEquals([config.doors[0].share, config.doors[0].fleet], ["web", "required"]);
});

Deno.test("cluster: what is refused, each at its file:line:column", () => {
  assertEquals(issues(door), [
    's.yaml:5:5: doors.ssh.share: needs a cluster section (see "Several gateways" in the README)',
  ]);
  const found = issues(`cluster:
  node: "gw 1"
  etcd:
    endpoints: ["ftp://x", "https://10.0.0.1:2379/v3"]
    prefix: sesame
    cert_file: gw.pem
    user: gw1
    timeout: 0s
doors:
  ssh: { secret: ${SECRET_B64}, ports: 20000-20999, fleet: maybe, open: { for: 5s } }
`);
  const at = (prefix: string) => found.find((l) => l.startsWith(prefix));
  assert(at("s.yaml:2:9: cluster.node: must name this node"), found.join("\n"));
  assert(
    at("s.yaml:4:17: cluster.etcd.endpoints.0: must be an http:// or https:// URL"),
    found.join("\n"),
  );
  assert(at("s.yaml:4:28: cluster.etcd.endpoints.1:"), found.join("\n"));
  assert(at("s.yaml:5:13: cluster.etcd.prefix: must start and end with"), found.join("\n"));
  assert(found.some((l) => l.includes("cert_file and key_file go together")), found.join("\n"));
  assert(found.some((l) => l.includes("user and password_file go together")), found.join("\n"));
  assert(at("s.yaml:8:14: cluster.etcd.timeout:"), found.join("\n"));
  assert(at("s.yaml:10:90: doors.ssh.fleet: must be required, local"), found.join("\n"));
});

Deno.test("cluster: no password and no member over http://", () => {
  const found = issues(`cluster:
  node: gw1
  etcd:
    endpoints: ["https://10.0.0.11:2379", "http://10.0.0.12:2379"]
    user: gw1
    password_file: gw1.password
${door}`);
  assert(
    found.some((l) =>
      l.startsWith("s.yaml:4:16: cluster.etcd.endpoints: mixes https:// and http://")
    ),
    found.join("\n"),
  );
  assert(
    found.some((l) => l.startsWith("s.yaml:6:20: cluster.etcd.password_file: needs https://")),
    found.join("\n"),
  );
});

Deno.test("cluster: a reload may not change the cluster (its watch and connection are made at start)", () => {
  const text = (node: string) =>
    `cluster: { node: ${node}, etcd: { endpoints: ["https://10.0.0.11:2379"] } }\n${door}`;
  const running = parseConfig(text("gw1"), "s.yaml");
  assertReloadable(running, parseConfig(text("gw1"), "s.yaml"));
  try {
    assertReloadable(running, parseConfig(text("gw2"), "s.yaml"));
    throw new Error("accepted");
  } catch (e) {
    assert(e instanceof ConfigError);
    assertEquals(e.issues[0].path, "cluster");
  }
});

Deno.test("fleet keys: counters keep numeric order as bytes; grants are read only for their own key", () => {
  assertEquals(counterText(58_012_345), "00000000000058012345");
  assert(counterText(99) < counterText(100));
  assertEquals(parseCounter("00000000000058012345"), 58_012_345);
  assertEquals(parseCounter("99999999999999999999"), undefined); // beyond 2^53: not one sesame wrote
  assertEquals(parseCounter("5"), undefined);
  assertEquals(
    markKey("/sesame/", { door: "ssh", secret: "fp", prefix: "2001:db8::/64" }),
    "/sesame/marks/ssh/fp/2001%3Adb8%3A%3A%2F64",
  );
  const grant = { group: "web", door: "ssh", source: "192.0.2.7", until: 1000, node: "gw1" };
  const key = grantKey("/sesame/", "web", "ssh", "192.0.2.7");
  const read = readDoorsEntry("/sesame/", key, grantValue(grant));
  assertEquals(read.kind === "grant" && read.grant, grant);
  // A grant naming another source, a float time, or a bad node is never honoured.
  for (
    const bad of [{ ...grant, source: "192.0.2.8" }, { ...grant, until: 1.5 }, {
      ...grant,
      node: "a b",
    }]
  ) {
    const entry = readDoorsEntry("/sesame/", key, grantValue(bad));
    assertEquals(entry.kind === "grant" && entry.grant, undefined);
  }
  assertEquals(readDoorsEntry("/sesame/", key, "{not json").kind, "grant");
  // A key no one could decode is skipped, not thrown (it would stop the watch of every grant).
  assertEquals(readDoorsEntry("/sesame/", "/sesame/doors/web/%E0/x", "{}"), { kind: "other" });
  // Only canonical sources: `revoke --ip` must be able to name what a grant opened.
  const upper = grantKey("/sesame/", "web", "ssh", "2001:DB8::7");
  const entry = readDoorsEntry("/sesame/", upper, grantValue({ ...grant, source: "2001:DB8::7" }));
  assertEquals(entry.kind === "grant" && entry.grant, undefined);
  assertEquals(readDoorsEntry("/sesame/", `${key}/gw2`, "1000"), {
    kind: "confirm",
    grantKey: key,
    node: "gw2",
  });
});
