/**
 * SPA doors against the real fwknop, in network namespaces this test creates: fwknop's
 * own client opens a sesame nft door for its address and nobody else; a packet sent
 * again (after the door closed, and after a restart) opens nothing; another address, a
 * wrong HMAC, an old timestamp, a truncated or oversized packet, a port outside the door
 * open nothing and are logged once each; sesame's client opens the door over IPv6. And
 * sesame's client is accepted by a real fwknopd (SHA-256 and SHA-512 HMACs).
 */
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { tempDir, writePrivate } from "./_cli.ts";
import { sleep } from "./_daemon.ts";
import { ADDR, canRunLab, denoArgs, Lab, lines } from "./_netns.ts";
import { eventually } from "./_process.ts";

const ignore = !Deno.env.get("CI") &&
  (!(await canRunLab("/usr/sbin/nft")) ||
    !(await Deno.stat("/usr/bin/fwknop").then(() => true, () => false)));
const SERVICE = 2222;
const FOR_S = 4;
const b64 = (n: number, fill: number) => btoa(String.fromCharCode(...new Uint8Array(n).fill(fill)));
const KEY = b64(32, 7), HMAC = b64(64, 9), WRONG_HMAC = b64(64, 3);

const server = (dir: string) =>
  `listen: { addresses: ["::"] }
state_file: ${dir}/state.db
doors:
  ssh:
    spa: { port: 62201, key_base64: "${KEY}", hmac_key_base64: "${HMAC}", access: ["tcp/${SERVICE}"] }
    open: { for: ${FOR_S}s, nft: { port: ${SERVICE} } }
`;
const client = `doors:
  ssh:
    spa: { port: 62201, key_base64: "${KEY}", hmac_key_base64: "${HMAC}", access: ["tcp/${SERVICE}"] }
`;

function startListen(lab: Lab, dir: string) {
  return lab.listen(`${dir}/server.yaml`);
}

/** fwknop's own client in the knocker's namespace (a home of its own for its rc file). */
async function fwknop(lab: Lab, dir: string, ...args: string[]) {
  const out = await lab.exec("knocker", [
    "/usr/bin/env",
    `HOME=${dir}/fwknop-home`,
    "/usr/bin/fwknop",
    "-D",
    ADDR.server.toKnocker,
    "--key-base64-rijndael",
    KEY,
    "--key-base64-hmac",
    HMAC,
    ...args,
  ]);
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, text);
  return text;
}

/** A packet made by fwknop and not sent (`--test`): its wire text. */
async function made(lab: Lab, dir: string, ...args: string[]): Promise<string> {
  const text = await fwknop(lab, dir, "--test", "-v", ...args);
  const wire = /Final SPA Data: (\S+)/.exec(text)?.[1];
  assert(wire, text);
  return wire;
}

Deno.test({
  name:
    "SPA: the real fwknop client opens a sesame door for its address only; replays, other addresses and bad packets open nothing",
  ignore,
  async fn(t) {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    await Deno.mkdir(`${dir.path}/fwknop-home`);
    await writePrivate(`${dir.path}/server.yaml`, server(dir.path));
    await writePrivate(`${dir.path}/client.yaml`, client);
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    let { child, log } = await startListen(lab, dir.path);
    const knockerIn = () => lab.canConnect("knocker", ADDR.server.toKnocker, SERVICE);
    const bystanderIn = () => lab.canConnect("bystander", ADDR.server.toBystander, SERVICE);
    const send = (wire: string, from: string) =>
      lab.exec(
        "knocker",
        lab.deno("tests/_udp_send.ts", ADDR.server.toKnocker, "62201", from, wire),
      );

    await t.step(
      "fwknop -a (its own address) and -s both open for the knocker, not the bystander",
      async () => {
        assertEquals(await knockerIn(), false);
        await fwknop(lab, dir.path, "-A", `tcp/${SERVICE}`, "-a", ADDR.knocker.v4);
        assert(await eventually(knockerIn, 2000), log.text);
        assertEquals(await bystanderIn(), false);
        await sleep(FOR_S * 1000 + 500);
        assertEquals(await knockerIn(), false, "closed after for");
        await fwknop(lab, dir.path, "-A", `tcp/${SERVICE}`, "-s");
        assert(await eventually(knockerIn, 2000), log.text);
        assertEquals(await bystanderIn(), false);
      },
    );

    await t.step(
      "the same packet again, after the door closed and after a restart, opens nothing",
      async () => {
        await sleep(FOR_S * 1000 + 500);
        const wire = await made(lab, dir.path, "-A", `tcp/${SERVICE}`, "-a", ADDR.knocker.v4);
        await send(wire, ADDR.knocker.v4);
        assert(await eventually(knockerIn, 2000), "the fresh packet opens");
        await sleep(FOR_S * 1000 + 500);
        assertEquals(await knockerIn(), false);
        await send(wire, ADDR.knocker.v4);
        await sleep(500);
        assertEquals(await knockerIn(), false, "replayed after the door closed");
        child.kill("SIGTERM");
        await child.status;
        ({ child, log } = await startListen(lab, dir.path));
        await send(wire, ADDR.knocker.v4);
        await sleep(500);
        assertEquals(await knockerIn(), false, "replayed after a restart");
        assertStringIncludes(log.text, "reason=replay");
      },
    );

    await t.step(
      "another address, a wrong HMAC, an old timestamp, a truncated or oversized packet, a port outside: nothing opens, one line each",
      async () => {
        // Each bad packet from an address of its own: failure lines are one per source a minute.
        const bad: [string, string][] = [
          [
            "another address",
            await made(lab, dir.path, "-A", `tcp/${SERVICE}`, "-a", "198.18.1.99"),
          ],
          ["a port outside", await made(lab, dir.path, "-A", "tcp/22", "-s")],
          [
            "an old timestamp",
            await made(lab, dir.path, "-A", `tcp/${SERVICE}`, "-s", "--time-offset-minus", "10min"),
          ],
          [
            "a wrong HMAC",
            await lab.exec("knocker", [
              "/usr/bin/env",
              `HOME=${dir.path}/fwknop-home`,
              "/usr/bin/fwknop",
              "-D",
              ADDR.server.toKnocker,
              "--key-base64-rijndael",
              KEY,
              "--key-base64-hmac",
              WRONG_HMAC,
              "-A",
              `tcp/${SERVICE}`,
              "-s",
              "--test",
              "-v",
            ]).then((o) => /Final SPA Data: (\S+)/.exec(new TextDecoder().decode(o.stdout))![1]),
          ],
        ];
        const fresh = await made(lab, dir.path, "-A", `tcp/${SERVICE}`, "-s");
        bad.push(["a truncated packet", fresh.slice(0, 100)], [
          "an oversized packet",
          fresh + "A".repeat(1400),
        ]);
        const expected: Record<string, RegExp> = {
          "another address": /reason=denied.*198\.18\.1\.99, not its source/,
          "a port outside": /reason=denied.*tcp\/22, outside the door's ports/,
          "an old timestamp": /reason=skew.*its timestamp is -6\d\d s off/,
          "a wrong HMAC": /reason=wrong.*no door's HMAC key/,
          "a truncated packet": /reason=wrong.*not a symmetric fwknop packet/,
          "an oversized packet": /reason=wrong.*oversized/,
        };
        for (const [i, [what, wire]] of bad.entries()) {
          const from = `198.18.1.${20 + i}`;
          await lab.exec("knocker", ["ip", "addr", "add", `${from}/24`, "dev", "ks"]);
          await send(wire, from);
          const line = new RegExp(
            `knock failed from ${from.replaceAll(".", "\\.")} on door \\S+: `,
          );
          assert(
            await eventually(() => line.test(log.text), 2000),
            `${what}: no line\n${log.text}`,
          );
          const mine = log.text.split("\n").filter((l) => line.test(l));
          assertEquals(mine.length, 1, `${what}: one line`);
          assert(expected[what].test(mine[0]), `${what}: ${mine[0]}`);
          assertEquals(mine[0].includes("evidence=udp"), true);
        }
        assertEquals(await knockerIn(), false);
        assertEquals(log.text.includes(KEY) || log.text.includes(HMAC), false, "no key in the log");
      },
    );

    await t.step(
      "sesame's own client opens the door over IPv6 (the message says 0.0.0.0: the packet's source)",
      async () => {
        const out = await lab.exec(
          "knocker",
          lab.deno(
            "cli.ts",
            "knock",
            ADDR.server.v6ToKnocker,
            "-c",
            `${dir.path}/client.yaml`,
            "--wait-open",
            String(SERVICE),
          ),
        );
        assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
        // The daemon's log reaches this process through a pipe: it may trail the door.
        assert(
          await eventually(() => log.text.includes(`door ssh opened for ${ADDR.knocker.v6}`), 3000),
          log.text,
        );
        assertEquals(await lab.canConnect("bystander", ADDR.server.v6ToBystander, SERVICE), false);
      },
    );
    child.kill("SIGTERM");
    await child.status;
  },
});

for (const digest of ["sha256", "sha512"] as const) {
  Deno.test({
    name: `SPA: sesame knock is accepted by the real fwknopd (HMAC-${digest.toUpperCase()})`,
    ignore,
    async fn() {
      await using dir = await tempDir();
      const ns = `sesame-fwknopd-${Deno.pid}-${digest}`;
      const sh = (...argv: string[]) =>
        new Deno.Command(argv[0], { args: argv.slice(1), stdout: "piped", stderr: "piped" })
          .output();
      await sh("ip", "netns", "add", ns);
      try {
        await sh("ip", "-n", ns, "link", "set", "lo", "up");
        await writePrivate(
          `${dir.path}/access.conf`,
          `SOURCE ANY\nKEY_BASE64 ${KEY}\nHMAC_KEY_BASE64 ${HMAC}\nHMAC_DIGEST_TYPE ${digest}\nFW_ACCESS_TIMEOUT 30\n`,
        );
        await writePrivate(
          `${dir.path}/fwknopd.conf`,
          "ENABLE_UDP_SERVER Y;\nUDPSERV_PORT 62201;\nPCAP_INTF lo;\n",
        );
        await writePrivate(
          `${dir.path}/client.yaml`,
          `doors:\n  fw:\n    spa: { port: 62201, key_base64: "${KEY}", hmac_key_base64: "${HMAC}", hmac_digest: ${digest}, access: ["tcp/22"] }\n`,
        );
        const daemon = new Deno.Command("ip", {
          args: [
            "netns",
            "exec",
            ns,
            "/usr/sbin/fwknopd",
            "-f",
            "-c",
            `${dir.path}/fwknopd.conf`,
            "-a",
            `${dir.path}/access.conf`,
            "-d",
            `${dir.path}/digest.cache`,
            "-p",
            `${dir.path}/fwknopd.pid`,
            "-r",
            `${dir.path}/run`,
          ],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        let log = "";
        const reading = (async () => {
          for await (const chunk of daemon.stderr.pipeThrough(new TextDecoderStream())) {
            log += chunk;
          }
        })().catch(() => {});
        try {
          assert(await eventually(() => log.includes("Kicking off UDP server"), 10_000), log);
          const out = await new Deno.Command("ip", {
            args: [
              "netns",
              "exec",
              ns,
              ...denoArgs("cli.ts", "knock", "127.0.0.1", "-c", `${dir.path}/client.yaml`),
            ],
            stdout: "piped",
            stderr: "piped",
          }).output();
          assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
          assert(
            await eventually(
              () => /Added access rule to FWKNOP_INPUT for 127\.0\.0\.1 -> .* tcp\/22/.test(log),
              5000,
            ),
            log,
          );
        } finally {
          daemon.kill("SIGTERM");
          await daemon.status;
          await daemon.stdout.cancel().catch(() => {});
          await reading;
        }
      } finally {
        await sh("ip", "netns", "delete", ns);
      }
    },
  });
}
