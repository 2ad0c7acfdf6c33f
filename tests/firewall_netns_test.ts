/**
 * The nftables and iptables backends against a real kernel firewall, in network
 * namespaces this test creates (server, knocker, bystander). Runs as root wherever the
 * tools exist, and always in CI (which installs them).
 */
import { readStore } from "../lib/store/sqlite.ts";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./_assert.ts";
import { tempDir, writePrivate } from "./_cli.ts";
import { SECRET_B64, sleep } from "./_daemon.ts";
import { ADDR, canRunLab, Lab, lines } from "./_netns.ts";
import { eventually } from "./_process.ts";

/** nft with its default long-lived `nft -i` session, nft with an `nft -f` per batch, iptables. */
type Variant = "nft" | "nft-batch" | "iptables" | "iptables-legacy";
type Backend = "nft" | "iptables";
const ignore = {
  nft: !Deno.env.get("CI") && !(await canRunLab("/usr/sbin/nft")),
  iptables: !Deno.env.get("CI") && !(await canRunLab("/usr/sbin/iptables")),
};
const SERVICE = 2222;
// Long enough for a Deno process to start and connect while the door is open, on a loaded CI machine
// (iptables stops honouring a rule up to a second early: --datestop has whole seconds).
const FOR_S = 8;

function serverConfig(dir: string, variant: Variant) {
  const backend = variant.startsWith("nft") ? "nft" : "iptables";
  const mode = variant === "nft-batch"
    ? ", nft_mode: batch"
    : variant === "iptables-legacy"
    ? ", iptables: iptables-legacy"
    : "";
  return `listen: { addresses: ["::"]${mode} }
state_file: ${dir}/state.json
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "24000-24099"
    length: 3
    period: 1h
    skew: 2
    open: { for: ${FOR_S}s, ${backend}: { port: ${SERVICE} } }
`;
}

const CLIENT =
  `doors:\n  ssh: { secret: "${SECRET_B64}", ports: "24000-24099", length: 3, period: 1h, skew: 2 }\n`;

async function startListen(lab: Lab, dir: string) {
  const child = lab.spawn("server", lab.deno("cli.ts", "listen", "-c", `${dir}/server.yaml`));
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  assert(
    await eventually(async () => {
      const { value } = await stderr.read();
      log += value ?? "";
      return log.includes("listening on");
    }, 10_000),
    `sesame listen did not start:\n${log}`,
  );
  (async () => {
    for (;;) {
      const { done } = await stderr.read().catch(() => ({ done: true }));
      if (done) return;
    }
  })();
  return child;
}

async function knock(lab: Lab, dir: string, target: string) {
  const out = await lab.exec(
    "knocker",
    lab.deno("cli.ts", "knock", target, "-c", `${dir}/client.yaml`, "--door", "ssh"),
  );
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
}

/** sesame's rules as the kernel holds them. */
async function rules(lab: Lab, variant: Variant): Promise<string> {
  if (variant.startsWith("nft")) return await lab.nft("list", "table", "inet", "sesame");
  let text = "";
  const legacy = variant === "iptables-legacy" ? "-legacy" : "";
  for (const tool of [`iptables${legacy}`, `ip6tables${legacy}`]) {
    const out = await lab.exec("server", [tool, "-w", "-S", "SESAME"]);
    const dec = new TextDecoder();
    text += out.success ? dec.decode(out.stdout) : `${tool} failed: ${dec.decode(out.stderr)}`;
  }
  return text;
}

for (const variant of ["nft", "nft-batch", "iptables", "iptables-legacy"] as const) {
  const backend: Backend = variant.startsWith("iptables") ? "iptables" : "nft";
  Deno.test({
    name:
      `${variant}: the door opens for the knocker only, closes after 'for', keeps live connections, and stays shut across SIGTERM and SIGKILL`,
    ignore: ignore[backend],
    fn: (t) => scenario(t, variant),
  });
}

async function scenario(t: Deno.TestContext, variant: Variant) {
  const backend: Backend = variant.startsWith("iptables") ? "iptables" : "nft";
  {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    await writePrivate(`${dir.path}/server.yaml`, serverConfig(dir.path, variant));
    await writePrivate(`${dir.path}/client.yaml`, CLIENT);
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    const server = ADDR.server.toKnocker;
    const serverForBystander = ADDR.server.toBystander;

    // Without sesame the service is reachable: the probes below can tell open from shut.
    assert(
      await lab.canConnect("knocker", server, SERVICE),
      "the service answers before sesame runs",
    );

    let daemon = await startListen(lab, dir.path);
    await t.step("before the knock, the port is shut for everyone", async () => {
      assertEquals(await lab.canConnect("knocker", server, SERVICE), false);
      assertEquals(await lab.canConnect("bystander", serverForBystander, SERVICE), false);
      // closed_reply auto: this namespace's input policy accepts, so closed ports reset.
      assertMatch(
        await rules(lab, variant),
        backend === "nft" ? /tcp dport 2222 reject with tcp reset/ : /--dports 2222 .*REJECT/,
      );
    });

    let holder: Deno.ChildProcess;
    let holderOut: ReturnType<typeof lines>;
    let openedAt = 0;
    await t.step(
      "after the knock, open for the knocker and still shut for the bystander",
      async () => {
        await knock(lab, dir.path, server);
        openedAt = Date.now();
        assert(
          await eventually(() => lab.canConnect("knocker", server, SERVICE), 2000),
          "open for the knocker",
        );
        assertEquals(await lab.canConnect("bystander", serverForBystander, SERVICE), false);
        assertStringIncludes(
          await rules(lab, variant),
          ADDR.knocker.v4,
        );
        holder = lab.spawn(
          "knocker",
          lab.deno("tests/_holder.ts", server, String(SERVICE)),
          "piped",
        );
        holderOut = lines(holder);
        assertEquals(await holderOut.next(), "connected");
      },
    );

    await t.step(
      "after 'for' new connections are refused, the one opened in time lives on",
      async () => {
        await sleep(Math.max(0, openedAt + FOR_S * 1000 + 500 - Date.now()));
        assertEquals(await lab.canConnect("knocker", server, SERVICE), false);
        const out = holderOut;
        const writer = holder.stdin.getWriter();
        await writer.write(new TextEncoder().encode("go\n"));
        assertEquals(await out.next(), "pong");
        writer.releaseLock();
      },
    );

    // Codes of the next periods (the server accepts T−2 … T+2). This period's is used up, and
    // so is every counter below the highest one used: each step takes the next counter.
    const neighbour = async (offset: number): Promise<string[]> => {
      const now = JSON.parse(new TextDecoder().decode(
        (await lab.exec(
          "knocker",
          lab.deno("cli.ts", "code", "-c", `${dir.path}/client.yaml`, "--door", "ssh", "--json"),
        )).stdout,
      ));
      const at = String((now.counter + offset) * 3600 + 1);
      const code = JSON.parse(new TextDecoder().decode(
        (await lab.exec(
          "knocker",
          lab.deno(
            "cli.ts",
            "code",
            "-c",
            `${dir.path}/client.yaml`,
            "--door",
            "ssh",
            "--json",
            "--at",
            at,
          ),
        )).stdout,
      ));
      return code.knocks.map((k: { port: number }) => String(k.port));
    };

    await t.step(
      "SIGKILL with a door open: the port stays protected and the door closes on time without sesame",
      async () => {
        await knock(lab, dir.path, server); // this period's code again: used, refused
        const sent = await lab.exec(
          "knocker",
          lab.deno("cli.ts", "knock", server, ...await neighbour(1)),
        );
        assertEquals(sent.code, 0);
        const openedAt = Date.now();
        assert(
          await eventually(() => lab.canConnect("knocker", server, SERVICE), 2000),
          "open for the knocker",
        );
        daemon.kill("SIGKILL");
        await daemon.status;
        assertEquals(await lab.canConnect("bystander", serverForBystander, SERVICE), false);
        await sleep(Math.max(0, openedAt + FOR_S * 1000 + 1200 - Date.now()));
        assertEquals(
          await lab.canConnect("knocker", server, SERVICE),
          false,
          "the kernel closed the door on time",
        );
        daemon = await startListen(lab, dir.path);
        assertEquals(await lab.canConnect("bystander", serverForBystander, SERVICE), false);
      },
    );

    await t.step("IPv6: a knock over v6 opens v6 for that address only", async () => {
      const sent = await lab.exec(
        "knocker",
        lab.deno("cli.ts", "knock", ADDR.server.v6ToKnocker, ...await neighbour(2)),
      );
      assertEquals(sent.code, 0);
      assert(
        await eventually(() => lab.canConnect("knocker", ADDR.server.v6ToKnocker, SERVICE), 2000),
        "open over IPv6",
      );
      assertEquals(
        await lab.canConnect("knocker", server, SERVICE),
        false,
        "IPv4 of the same host stays shut",
      );
      assertEquals(await lab.canConnect("bystander", ADDR.server.v6ToBystander, SERVICE), false);
    });

    await t.step(
      "SIGTERM leaves the port protected, and the door still open keeps its time",
      async () => {
        daemon.kill("SIGTERM");
        assertEquals((await daemon.status).code, 0);
        assertEquals(await lab.canConnect("bystander", serverForBystander, SERVICE), false);
        assertEquals(await lab.canConnect("bystander", ADDR.server.v6ToBystander, SERVICE), false);
        assertStringIncludes(await rules(lab, variant), backend === "nft" ? "reject" : "REJECT");
        // The IPv6 door opened in the step before is within its time: the kernel keeps it,
        // and the state file keeps it for the next start.
        assert(
          await lab.canConnect("knocker", ADDR.server.v6ToKnocker, SERVICE),
          "still open for the knocker",
        );
        const state = readStore(`${dir.path}/state.json`);
        assertEquals(state.open.map((r: { source: string }) => r.source), [ADDR.knocker.v6]);
      },
    );
  }
}
