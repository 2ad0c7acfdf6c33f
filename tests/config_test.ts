import { assert, assertEquals, assertStringIncludes, assertThrows } from "./_assert.ts";
import { parseConfig } from "../lib/config/load.ts";
import { ConfigError } from "../lib/errors.ts";

const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

function errors(text: string, file = "sesame.yaml"): string[] {
  const e = assertThrows(() => parseConfig(text, file), ConfigError) as ConfigError;
  return e.issues.map((i) => `${i.position?.line}:${i.position?.column} ${i.path}: ${i.message}`);
}

Deno.test("parseConfig() applies the documented defaults", () => {
  const config = parseConfig(
    `doors:\n  ssh:\n    secret: "${SECRET}"\n    ports: "20000-20099"\n`,
    "x.yaml",
  );
  const door = config.doors[0];
  assert(door.kind === "rotating");
  assertEquals(
    [door.length, door.protocol, door.periodMs, door.skew, door.sequenceTimeoutMs, door.bindSource],
    [4, "tcp", 30_000, 1, 10_000, false],
  );
  assertEquals(door.sourcePrefix, { ipv4: 32, ipv6: 64 });
  assertEquals(door.open, undefined); // a client-side door
  assertEquals(config.addresses, ["::"]);
  assertEquals(door.pool, { tcp: door.candidates, udp: [] });
});

Deno.test("parseConfig() reads the full example of the README", async () => {
  const text = await Deno.readTextFile(new URL("../examples/sesame.yaml", import.meta.url));
  const config = parseConfig(text, "examples/sesame.yaml");
  assertEquals(config.doors.map((d) => d.name), ["ssh", "legacy"]);
  const [ssh, legacy] = config.doors;
  assert(ssh.kind === "rotating" && legacy.kind === "static");
  assertEquals(ssh.candidates.length, 999);
  assertEquals(ssh.candidates.includes(20022), false);
  assertEquals(legacy.sequence, [
    { port: 7000, protocol: "tcp" },
    { port: 8000, protocol: "udp" },
    { port: 9000, protocol: "tcp" },
  ]);
  // Two decoys on each side of each knock port, same protocol: an in-order sweep hits one first.
  assertEquals(legacy.decoys, {
    tcp: [6998, 6999, 7001, 7002, 8998, 8999, 9001, 9002],
    udp: [7998, 7999, 8001, 8002],
  });
  assertEquals(legacy.pool, {
    tcp: [6998, 6999, 7000, 7001, 7002, 8998, 8999, 9000, 9001, 9002],
    udp: [7998, 7999, 8000, 8001, 8002],
  });
  assertEquals(ssh.open?.command, ["/usr/bin/logger", "sesame: open ssh for {ip}"]);
});

Deno.test("parseConfig() points at file:line:column of each mistake", () => {
  const text = [
    "doors:", //                                          1
    "  ssh:", //                                          2
    `    secret: "${SECRET}"`, //                         3
    '    ports: "20000-20007"', //                        4
    "    length: 9", //                                   5
    "    protocl: tcp", //                                6
    "    period: -5s", //                                 7
    "  legacy:", //                                       8
    '    sequence: [7000, "8000/sctp", 70000]', //        9
    "    open: { for: 1h, command: [logger, hi] }", //    10
  ].join("\n");
  assertEquals(errors(text), [
    '6:5 doors.ssh.protocl: unknown key; did you mean "protocol"?',
    "5:13 doors.ssh.length: must be at most the 8 ports of the pool, received 9",
    '7:13 doors.ssh.period: must be a duration such as "500ms", "30s" or "5m", received "-5s"',
    '10:32 doors.legacy.open.command.0: must be an absolute path (no PATH lookup for a security tool), received "logger"',
    '9:22 doors.legacy.sequence.1: must be a port with an optional protocol ("8000", "8000/udp", "8000:tcp"), received "8000/sctp"',
    '9:35 doors.legacy.sequence.2: must be a port with an optional protocol ("8000", "8000/udp", "8000:tcp"), received 70000',
  ]);
});

Deno.test("parseConfig() refuses impossible values with the key and value", () => {
  const door = (body: string) =>
    `doors:\n  d:\n    secret: "${SECRET}"\n    ports: "1000-1010"\n${body}`;
  assertStringIncludes(errors(door("    period: 0"))[0], "period: must be between 1000 ms");
  assertStringIncludes(errors(door("    length: 0"))[0], "length: must be 1–16, received 0");
  assertStringIncludes(errors(door("    length: 17"))[0], "length: must be 1–16, received 17");
  assertStringIncludes(errors(door("    skew: -1"))[0], "skew: must be 0–10");
  assertStringIncludes(
    errors(door("    protocol: sctp"))[0],
    'protocol: must be tcp, udp or mixed, received "sctp"',
  );
  assertStringIncludes(errors(door('    exclude: "1000-1009"'))[0], "must leave at least 2 ports");
  assertStringIncludes(
    errors(`doors:\n  d:\n    secret: "${SECRET}"\n    ports: "0-10"`)[0],
    "port must be 1–65535, received 0",
  );
  assertStringIncludes(
    errors(`doors:\n  d:\n    secret: "${SECRET}"\n    ports: "65530-65536"`)[0],
    "received 65536",
  );
  assertStringIncludes(
    errors(`doors:\n  d:\n    ports: "1-10"`)[0],
    'exactly one of "secret", "secret_file" or "users"',
  );
  assertStringIncludes(errors(`doors: {}`)[0], "at least one door");
  assertStringIncludes(errors(`doors:\n  "bad name":\n    sequence: [1]`)[0], "door name must be");
  assertStringIncludes(
    errors(`listen:\n  addresses: ["::", "0.0.0.0"]\ndoors:\n  d:\n    sequence: [1]`)[0],
    "binding",
  );
  assertStringIncludes(
    errors(`doors:\n  d:\n    sequence: [1]\n    secret: "${SECRET}"`)[0],
    "static door",
  );
});

Deno.test("parseConfig() never echoes a secret, even a malformed one", () => {
  for (const secret of ["c2hvcnQ", "not base64 at all!!!!!!!!!!!!!!!", "AAAAAAAAAAAAAAAAAAAAA"]) {
    const e = assertThrows(
      () => parseConfig(`doors:\n  d:\n    secret: "${secret}"\n    ports: "1-10"\n`, "s.yaml"),
      ConfigError,
    );
    assertEquals(e.message.includes(secret), false, e.message);
    assertStringIncludes(e.message, "s.yaml:3:13: doors.d.secret: must be base64url");
  }
});

Deno.test("parseConfig() reports YAML syntax errors, duplicate keys and alias bombs with a position", () => {
  assertEquals(errors("doors: [1", "y.yaml").length, 1);
  assertStringIncludes(
    errors("doors:\n  a: {sequence: [1]}\n  a: {sequence: [2]}")[0],
    "3:3 : Map keys must be unique",
  );
  const bomb = [
    "a: &a [1,1,1,1,1,1,1,1,1,1]",
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]",
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]",
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]",
    "doors: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]",
  ].join("\n");
  assertStringIncludes(errors(bomb)[0], "1:1 : cannot be read: Excessive alias count");
  assertStringIncludes(errors("")[0], "must be a mapping, received nothing");
  assertStringIncludes(errors("- 1\n- 2")[0], "must be a mapping, received a list");
});

Deno.test("parseConfig() reads secret_file through the injected reader and locates its failure", () => {
  const ok = parseConfig(`doors:\n  d:\n    secret_file: /k\n    ports: "1-10"\n`, "f.yaml", {
    readSecretFile: () => SECRET + "\n",
  });
  assert(ok.doors[0].kind === "rotating" && ok.doors[0].secret.length === 32);
  const e = assertThrows(
    () =>
      parseConfig(`doors:\n  d:\n    secret_file: /k\n    ports: "1-10"\n`, "f.yaml", {
        readSecretFile: () => {
          throw new Error("no such file");
        },
      }),
    ConfigError,
  );
  assertStringIncludes(
    e.message,
    'f.yaml:3:18: doors.d.secret_file: cannot read "/k": no such file',
  );
});

Deno.test("parseConfig() reads allow/deny lists and rejects malformed ones", () => {
  const config = parseConfig(
    `allow: ["192.0.2.0/24", "2001:db8::/32"]\ndeny: ["192.0.2.66"]\ndoors:\n  d:\n    sequence: [1, 2]\n    deny: ["::ffff:10.0.0.0/104"]\n`,
    "a.yaml",
  );
  assertEquals(config.allow.map((c) => c.prefix), [24, 32]);
  assertEquals(config.deny[0].prefix, 32);
  assertEquals(config.doors[0].deny[0], {
    family: 4,
    bytes: new Uint8Array([10, 0, 0, 0]),
    prefix: 8,
  });
  assertStringIncludes(
    errors(`allow: ["10.0.0.0/33"]\ndoors:\n  d:\n    sequence: [1]`)[0],
    "1:9 allow.0: must be an address or CIDR",
  );
  // ::1.2.3.0/120 (IPv4-compatible) denied 1.2.3.x in 0.2.0, and still does (warned about).
  const old = parseConfig(`deny: ["::1.2.3.0/120"]\ndoors:\n  d:\n    sequence: [1]`, "o.yaml");
  assertEquals(old.deny[0], { family: 4, bytes: new Uint8Array([1, 2, 3, 0]), prefix: 24 });
  assertEquals(old.warnings?.length, 1);
  assertStringIncludes(
    old.warnings![0],
    "o.yaml:1:8: deny.0: ::1.2.3.0/120 is read as the IPv4 prefix 1.2.3.0/24, as sesame 0.2.0 read it; write 1.2.3.0/24 or ::ffff:1.2.3.0/120",
  );
  // Other spellings of it too.
  const spelled = parseConfig(
    `deny: ["0::1.2.3.4", "::0:1.2.3.5"]\ndoors:\n  d:\n    sequence: [1]`,
    "o.yaml",
  );
  assertEquals(spelled.deny.map((c) => [c.family, c.prefix, c.bytes.join(".")]), [[
    4,
    32,
    "1.2.3.4",
  ], [4, 32, "1.2.3.5"]]);
  // Elsewhere the form is refused.
  assertStringIncludes(
    errors(`listen: { addresses: ["::1.2.3.4"] }\ndoors:\n  d:\n    sequence: [1]`)[0],
    "listen.addresses.0: must be an IP address",
  );
});

Deno.test("parseConfig() takes pools up to 16 384 ports, all of which listen, and refuses larger ones with the reason", () => {
  const door = (body: string) => `doors:\n  d:\n    secret: "${SECRET}"\n${body}`;
  const big = parseConfig(door('    ports: "10000-26383"\n'), "b.yaml").doors[0];
  assertEquals(big.kind === "rotating" && big.pool.tcp.length, 16_384);
  const message = errors(door('    ports: "10000-26384"\n'))[0];
  assertStringIncludes(message, "4:12 doors.d.ports: must be at most 16384 ports");
  assertStringIncludes(message, "every pool port listens");
  assertStringIncludes(message, "received 16385");
  assertStringIncludes(
    errors(door('    ports: "10000-10999"\n    bind: window\n'))[0],
    "unknown key",
  );
});

Deno.test("the example server and client configs validate (with their key file)", async () => {
  for (const name of ["server.yaml", "client.yaml"]) {
    const text = await Deno.readTextFile(new URL(`../examples/${name}`, import.meta.url));
    const config = parseConfig(text, name, { readSecretFile: () => SECRET });
    assertEquals(config.doors.map((d) => d.name), ["ssh"]);
  }
});

Deno.test("parseConfig(): a control character in a key is escaped, so each issue stays one line", () => {
  const lines = errors('doors:\n  "bad\\nname":\n    sequence: [7000]\n"sta\\u0007te_file": x\n');
  for (const line of lines) {
    assertEquals(line.includes("\n") || line.includes("\u0007"), false, line);
  }
  assertStringIncludes(lines.join("\n"), "doors.bad\\x0aname");
  assertStringIncludes(lines.join("\n"), "sta\\x07te_file: unknown key");
});

Deno.test("parseConfig(): a knock port of two doors, a protected port inside a pool, and iptables over 15 ports are refused", () => {
  const shared = errors(
    `doors:\n  a:\n    sequence: [7000, 7001]\n  b:\n    secret: "${SECRET}"\n    ports: "6990-7010"\n`,
  );
  assertStringIncludes(
    shared.join("\n"),
    'doors.b.ports: knock port 7000/tcp belongs to door "a" too',
  );
  const shadowed = errors(
    `doors:\n  a:\n    sequence: [7000, 7001]\n    open: { nft: { port: 7001 } }\n`,
  );
  assertStringIncludes(
    shadowed.join("\n"),
    'doors.a.open.nft: protected port 7001/tcp is a knock port of door "a"',
  );
  const wide = errors(
    `doors:\n  a:\n    sequence: [7000]\n    open: { iptables: { ports: "1-16" } }\n`,
  );
  assertStringIncludes(
    wide.join("\n"),
    "at most 15 protected ports (iptables' multiport match takes 15), received 16",
  );
  // The same ports on another protocol, or behind nft, are fine.
  parseConfig(
    `doors:\n  a:\n    sequence: [7000]\n    open: { nft: { ports: "1-16" } }\n  b:\n    sequence: ["7000/udp"]\n`,
    "ok.yaml",
  );
});

Deno.test("parseConfig(): nft sets of the admin's own table, checked", () => {
  const ok = parseConfig(
    `doors:\n  a:\n    sequence: [7000]\n    open: { nft: { set: { ipv4: "inet filter ssh_v4", ipv6: "ip6 filter ssh_v6" } } }\n`,
    "ok.yaml",
  );
  assertEquals(ok.doors[0].open?.nft?.sets, { v4: "inet filter ssh_v4", v6: "ip6 filter ssh_v6" });
  const bad = errors(
    `doors:\n  a:\n    sequence: [7000]\n    open: { nft: { set: { ipv4: "filter; drop" }, port: 22 } }\n  b:\n    sequence: [7100]\n    open: { iptables: { set: { ipv4: "inet filter x" } } }\n`,
  ).join("\n");
  assertStringIncludes(bad, 'doors.a.open.nft.set.ipv4: must be "FAMILY TABLE SET"');
  assertStringIncludes(bad, 'doors.a.open.nft.port: a door with "set" takes no "port"');
  assertStringIncludes(bad, 'doors.b.open.iptables.set: only "nft" takes "set"');
});

Deno.test("parseConfig(): forward and dnat doors, checked (nft only, an address and ports that parse, a dnat port of its own)", () => {
  const ok = parseConfig(
    `doors:
  fwd:
    sequence: [7000]
    open: { nft: { forward: { to: { host: "2001:DB8::10", ports: [22, 2222] } } } }
  pf:
    sequence: [7100]
    open: { nft: { dnat: { port: 2300, to: { host: 192.168.1.10, port: 22 }, masquerade: true } } }
`,
    "ok.yaml",
  );
  assertEquals(ok.doors[0].open?.nft, {
    ports: [22, 2222],
    protocol: "tcp",
    gateway: {
      kind: "forward",
      hosts: [{ host: "2001:db8::10", family: 6 }],
      toPorts: [22, 2222],
      masquerade: false,
    },
  });
  assertEquals(ok.doors[1].open?.nft?.ports, [2300]);
  assertEquals(ok.doors[1].open?.nft?.gateway?.masquerade, true);
  const bad = errors(
    `doors:
  a:
    sequence: [7000]
    open: { iptables: { forward: { to: { host: 192.168.1.10, port: 22 } } } }
  b:
    sequence: [7100]
    open: { nft: { dnat: { port: 7000, to: { host: 192.168.1.300, port: 22 } } } }
  c:
    sequence: [7200]
    open: { nft: { dnat: { port: 7000, to: { host: 192.168.1.10, ports: [22, 23] } } } }
  d:
    sequence: [7300]
    open: { nft: { port: 2300 } }
  e:
    sequence: [7400]
    open: { nft: { dnat: { port: 2300, to: { host: 192.168.1.10, port: 22 } }, port: 22 } }
  f:
    sequence: [7500]
    open: { nft: { dnat: { port: 2300, to: { host: 192.168.1.11, port: 22 } } } }
  g:
    sequence: [7600]
    open: { nft: { dnat: { port: 7100, to: { host: 192.168.1.12, port: 22 } } } }
  h:
    sequence: [7700]
    open: { nft: { forward: { to: { host: [192.168.1.10, 192.168.1.11], port: 22 } } } }
`,
  ).join("\n");
  assertStringIncludes(
    bad,
    "doors.h.open.nft.forward.to.host.1: names a second IPv4 address: one inside host per door",
  );
  assertStringIncludes(
    bad,
    'doors.a.open.iptables.forward: only "nft" takes forward and dnat doors',
  );
  assertStringIncludes(
    bad,
    "doors.b.open.nft.dnat.to.host: must be the inside host's IPv4 or IPv6 address",
  );
  assertStringIncludes(bad, "doors.c.open.nft.dnat.to.ports: a dnat door forwards to one port");
  assertStringIncludes(bad, 'doors.e.open.nft.port: a dnat door takes no "port" beside it');
  assertStringIncludes(bad, `doors.f.open.nft: port 2300/tcp is door "d"'s too`);
  assertStringIncludes(
    bad,
    'doors.g.open.nft: protected port 7100/tcp is a knock port of door "b"',
  );
});

Deno.test("parseConfig(): SPA doors: one HMAC key per port, the SPA port protected by no door, access within the door's ports", () => {
  const k = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
  const h = btoa(String.fromCharCode(...new Uint8Array(64).fill(9)));
  const bad = errors(
    `doors:
  a:
    spa: { key_base64: "${k}", hmac_key_base64: "${h}", access: ["tcp/23"] }
    open: { nft: { port: 22 } }
  b:
    spa: { key_base64: "${k}", hmac_key_base64: "${h}" }
    open: { nft: { port: 443 } }
  c:
    sequence: [7000]
    open: { nft: { port: 62201, protocol: udp } }
`,
  ).join("\n");
  assertStringIncludes(bad, "doors.a.spa.access: tcp/23 is not among the ports this door opens");
  assertStringIncludes(bad, 'doors.b.spa: has the same HMAC key as door "a" on port 62201');
  assertStringIncludes(
    bad,
    "doors.c.open.nft: protected port 62201/udp is the SPA port of door",
  );
});

Deno.test("parseConfig(): listen.capture: nflog takes pools larger than the sockets intake can bind; nflog_group only with it", () => {
  const door =
    `doors:\n  big: { secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", ports: "20000-49999" }\n`;
  const config = parseConfig(`listen: { capture: nflog, nflog_group: 7 }\n${door}`, "a.yaml");
  assertEquals(config.capture, { kind: "nflog", group: 7 });
  assertEquals(config.doors[0].pool.tcp.length, 30000);
  assertStringIncludes(errors(door).join("\n"), "doors.big.ports: must be at most 16384 ports");
  assertStringIncludes(
    errors(`listen: { nflog_group: 7 }\n${door.replace("20000-49999", "20000-20099")}`).join("\n"),
    "listen.nflog_group: only listen.capture: nflog takes a group",
  );
});
