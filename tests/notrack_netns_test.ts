/**
 * Under a scan or a flood, in network namespaces of the test's own with real nft: knocks
 * never enter conntrack (so floods cannot fill its table), and the protected port answers
 * as the host's other closed ports do (a scan does not single it out).
 */
import { assert, assertEquals } from "./_assert.ts";
import { tempDir, writePrivate } from "./_cli.ts";
import { SECRET_B64 } from "./_daemon.ts";
import { ADDR, canRunLab, Lab, lines } from "./_netns.ts";
import { spawnListen } from "./_process.ts";

const ignore = !Deno.env.get("CI") && !(await canRunLab("/usr/sbin/nft")) ||
  !(await Deno.stat("/usr/bin/nmap").then(() => true, () => false)) && !Deno.env.get("CI");
const SERVICE = 2222;

/**
 * Conntrack entries left by `times` SYN scans of the whole pool (100 ports) from the
 * bystander, the table flushed first.
 */
async function scanEntries(lab: Lab, times: number): Promise<number> {
  await lab.exec("server", ["conntrack", "-F"]);
  const before = await conntrackCount(lab);
  for (let i = 0; i < times; i++) {
    const out = await lab.exec("bystander", [
      ...["nmap", "-n", "-Pn", "-sS", "-T5", "--max-retries", "0", "-p", "20000-20099"],
      ADDR.server.toBystander,
    ]);
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  }
  return (await conntrackCount(lab)) - before;
}

async function conntrackCount(lab: Lab): Promise<number> {
  const out = await lab.exec("server", ["conntrack", "-C"]);
  return Number(new TextDecoder().decode(out.stdout).trim());
}

/** sesame listening in the server namespace, door ssh on `backend` protecting SERVICE. */
async function listenWith(lab: Lab, dir: string, backend: "nft" | "iptables") {
  await writePrivate(
    `${dir}/c.yaml`,
    `listen: { addresses: ["::"] }
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "20000-20099"
    open: { for: 30s, ${backend}: { port: ${SERVICE} } }
`,
  );
  const p = spawnListen(["-c", `${dir}/c.yaml`], ["ip", "netns", "exec", lab.ns.server]);
  try {
    await p.waitForLog(/listening on/, 10_000);
  } catch (e) {
    await p[Symbol.asyncDispose]();
    throw e;
  }
  return p;
}

Deno.test({
  name:
    "notrack and closed_reply: SYN scans of the pool leave conntrack empty; the protected port looks like its closed neighbours",
  ignore,
  async fn() {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    await writePrivate(
      `${dir.path}/c.yaml`,
      `listen: { addresses: ["::"] }
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "20000-20099"
    open: { for: 30s, nft: { port: ${SERVICE} } }
`,
    );
    // The admin's own table accepts the pool by port (a rule by ct state new would keep
    // knocks tracked: see below).
    await Deno.writeTextFile(
      `${dir.path}/admin.nft`,
      "table inet filter {\n  chain input {\n    type filter hook input priority filter; policy accept;\n    tcp dport 20000-20099 accept\n  }\n}\n",
    );
    assertEquals((await lab.exec("server", ["nft", "-f", `${dir.path}/admin.nft`])).code, 0);
    await using p = spawnListen(["-c", `${dir.path}/c.yaml`], [
      "ip",
      "netns",
      "exec",
      lab.ns.server,
    ]);
    await p.waitForLog(/listening on/, 10_000);
    assertEquals(/knocks stay in conntrack/.test(p.log()), false, p.log());
    // Five SYN scans of the whole pool from the bystander: 500 raw SYNs.
    const entries = await scanEntries(lab, 5);
    assert(entries < 10, `the scans left ${entries} conntrack entries (tracked: ~500)`);
    // The protected port and its neighbours, none of which listens: alike.
    const out = await lab.exec("bystander", [
      "nmap",
      "-n",
      "-Pn",
      "-sS",
      "--max-retries",
      "1",
      "-p",
      `${SERVICE - 1}-${SERVICE + 1}`,
      ADDR.server.toBystander,
    ]);
    const report = new TextDecoder().decode(out.stdout);
    const states = [...report.matchAll(/^(\d+)\/tcp\s+(\S+)/gm)].map((m) => `${m[1]} ${m[2]}`);
    assertEquals(
      states.length === 3 ? states : [...report.matchAll(/Not shown: \d+ (\S+)/g)].map((m) => m[1]),
      states.length === 3
        ? [`${SERVICE - 1} closed`, `${SERVICE} closed`, `${SERVICE + 1} closed`]
        : ["closed"],
      report,
    );
    p.kill("SIGTERM");
    assertEquals((await p.child.status).code, 0);
  },
});

Deno.test({
  name:
    "closed_reply auto: behind a firewall whose input chain ends in a reject (firewalld's layout), the protected port is filtered like its neighbours",
  ignore,
  async fn() {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    await Deno.writeTextFile(
      `${dir.path}/admin.nft`,
      "table inet filter {\n  chain input {\n    type filter hook input priority filter; policy accept;\n    ct state established,related accept\n    tcp dport 20000-20099 accept\n    tcp dport 2222 accept\n    reject with icmpx admin-prohibited\n  }\n}\n",
    );
    assertEquals((await lab.exec("server", ["nft", "-f", `${dir.path}/admin.nft`])).code, 0);
    await using p = await listenWith(lab, dir.path, "nft");
    assert(/closed_reply auto: protected ports drop/.test(p.log()), p.log());
    const out = await lab.exec("bystander", [
      "nmap",
      "-n",
      "-Pn",
      "-sS",
      "--max-retries",
      "1",
      "-p",
      `${SERVICE - 1}-${SERVICE + 1}`,
      ADDR.server.toBystander,
    ]);
    const report = new TextDecoder().decode(out.stdout);
    assert(!/\bclosed\b|\bopen\b/.test(report.replace(/Not shown.*/g, "")), report);
    assert(/filtered/.test(report), report);
    p.kill("SIGTERM");
    assertEquals((await p.child.status).code, 0);
  },
});

const ignoreIptables = !Deno.env.get("CI") && !(await canRunLab("/usr/sbin/iptables")) ||
  !(await Deno.stat("/usr/bin/nmap").then(() => true, () => false)) && !Deno.env.get("CI");

Deno.test({
  name:
    "notrack, iptables backend: SYN scans of the pool leave conntrack empty, also after another tool flushes the raw table",
  ignore: ignoreIptables,
  async fn() {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    await using p = await listenWith(lab, dir.path, "iptables");
    assertEquals(/knocks stay in conntrack/.test(p.log()), false, p.log());
    for (const tool of ["iptables", "ip6tables"]) {
      const raw = new TextDecoder().decode(
        (await lab.exec("server", [tool, "-t", "raw", "-S"])).stdout,
      );
      assert(raw.includes("-A PREROUTING -j SESAME-KNOCKS-IN"), `${tool}: ${raw}`);
      assert(raw.includes("-A OUTPUT -j SESAME-KNOCKS-OUT"), `${tool}: ${raw}`);
    }
    // Five SYN scans of the whole pool: 500 SYNs, each answered by a listener.
    const entries = await scanEntries(lab, 5);
    assert(entries < 10, `the scans left ${entries} conntrack entries (tracked: ~500)`);
    // Another tool flushes the raw table: sesame puts its chains back.
    assertEquals((await lab.exec("server", ["iptables", "-w", "-t", "raw", "-F"])).code, 0);
    await p.waitForLog(/sesame's rules were removed/, 2000);
    const again = await scanEntries(lab, 2);
    assert(again < 10, `after the repair the scans left ${again} conntrack entries`);
    p.kill("SIGTERM");
    assertEquals((await p.child.status).code, 0);
  },
});

/**
 * Starts sesame with a door on `backend` behind the admin's stateful rules (already
 * loaded), and knocks from the knocker: the knock must open the door, and the log must say
 * why knocks stay tracked. Stops sesame.
 */
async function knockBehindStatefulRules(lab: Lab, dir: string, backend: "nft" | "iptables") {
  await writePrivate(
    `${dir}/client.yaml`,
    `doors:\n  ssh: { secret: "${SECRET_B64}", ports: "20000-20099" }\n`,
  );
  await using p = await listenWith(lab, dir, backend);
  assert(/knocks stay in conntrack .*state new/i.test(p.log()), p.log());
  const out = await lab.exec("knocker", [
    ...lab.deno("cli.ts", "knock", ADDR.server.toKnocker, "-c", `${dir}/client.yaml`),
    "--door",
    "ssh",
    "--wait-open",
    String(SERVICE),
    "--wait-timeout",
    "5",
  ]);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr) + p.log());
  p.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
}

Deno.test({
  name:
    "notrack, iptables backend: on a stateful ruleset that sorts by state NEW, knocks stay tracked and still open the door (no admin locked out), and the log says why",
  ignore: ignoreIptables,
  async fn() {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    // A common stateful layout: new connections go to a chain of accepted ports, the rest
    // is rejected. Untracked knocks would miss the state NEW rule and be rejected.
    for (
      const rule of [
        "-N TCP",
        "-A TCP -p tcp --dport 20000:20099 -j ACCEPT",
        `-A TCP -p tcp --dport ${SERVICE} -j ACCEPT`,
        "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A INPUT -p tcp --syn -m conntrack --ctstate NEW -j TCP",
        "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
      ]
    ) {
      const out = await lab.exec("server", ["iptables", "-w", ...rule.split(" ")]);
      assertEquals(out.code, 0, `${rule}: ${new TextDecoder().decode(out.stderr)}`);
    }
    await knockBehindStatefulRules(lab, dir.path, "iptables");
    const raw = new TextDecoder().decode(
      (await lab.exec("server", ["iptables", "-t", "raw", "-S"])).stdout,
    );
    assertEquals(/CT --notrack/.test(raw), false, raw);
  },
});

for (const backend of ["nft", "iptables"] as const) {
  Deno.test({
    name:
      `notrack, ${backend} backend: behind an nft table that sorts new connections by ct state, knocks stay tracked and still open the door, and the log says why`,
    ignore: backend === "nft" ? ignore : ignoreIptables,
    async fn() {
      await using dir = await tempDir();
      await using lab = await Lab.create();
      const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
      assertEquals(await lines(service).next(), "ready");
      // New connections go to a chain of accepted ports; the rest is reset.
      await Deno.writeTextFile(
        `${dir.path}/admin.nft`,
        `table inet filter {
  chain ports {
    tcp dport { 20000-20099, ${SERVICE} } accept
  }
  chain input {
    type filter hook input priority filter; policy accept;
    ct state established,related accept
    tcp flags syn ct state new jump ports
    meta l4proto tcp reject with tcp reset
  }
}
`,
      );
      assertEquals((await lab.exec("server", ["nft", "-f", `${dir.path}/admin.nft`])).code, 0);
      await knockBehindStatefulRules(lab, dir.path, backend);
    },
  });
}

Deno.test({
  name:
    "notrack, nft backend: a firewall reload that brings a stateful ruleset while sesame runs: the repair keeps knocks tracked from then on, and a knock still opens",
  ignore,
  async fn() {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    await using p = await listenWith(lab, dir.path, "nft");
    assertEquals(/knocks stay in conntrack/.test(p.log()), false, p.log()); // untracked so far
    // The admin's /etc/nftables.conf, loaded as `systemctl reload nftables` does.
    await Deno.writeTextFile(
      `${dir.path}/nftables.conf`,
      `flush ruleset
table inet filter {
  chain ports {
    tcp dport { 20000-20099, ${SERVICE} } accept
  }
  chain input {
    type filter hook input priority filter; policy accept;
    ct state established,related accept
    tcp flags syn ct state new jump ports
    meta l4proto tcp reject with tcp reset
  }
}
`,
    );
    assertEquals((await lab.exec("server", ["nft", "-f", `${dir.path}/nftables.conf`])).code, 0);
    await p.waitForLog(/knocks stay in conntrack .*ct state new/, 3000);
    await p.waitForLog(/sesame's rules were removed/, 3000);
    await writePrivate(
      `${dir.path}/client.yaml`,
      `doors:\n  ssh: { secret: "${SECRET_B64}", ports: "20000-20099" }\n`,
    );
    const out = await lab.exec("knocker", [
      ...lab.deno("cli.ts", "knock", ADDR.server.toKnocker, "-c", `${dir.path}/client.yaml`),
      "--door",
      "ssh",
      "--wait-open",
      String(SERVICE),
      "--wait-timeout",
      "5",
    ]);
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr) + p.log());
    p.kill("SIGTERM");
    assertEquals((await p.child.status).code, 0);
  },
});
