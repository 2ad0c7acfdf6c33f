/**
 * Several gateways, one door, against real etcd (Debian's etcd-server: three members,
 * TLS with client certificates) and real nft, in network namespaces this test creates:
 * a knock on node A opens a shared door on A and B for the knocker only; the same code
 * on B is refused; a revoke on B closes on both; with one member killed knocks still
 * open, with two they are refused (nothing opens, open doors close at their time) except
 * on the break-glass door; with the members back knocks open again without a restart;
 * one code sent to A and B at the same moment opens once; a SIGKILLed node opens no code
 * twice after its restart.
 */
import { assert, assertEquals } from "./_assert.ts";
import { codeAt } from "../lib/code.ts";
import { parseAddress } from "../lib/address.ts";
import { validateConfig } from "../lib/config/validate.ts";
import type { Door } from "../lib/config/types.ts";
import { canRunLab } from "./_netns.ts";
import { denoArgs, FLEET, FleetLab } from "./_fleet_lab.ts";
import { SECRET_B64 } from "./_daemon.ts";
import { codeOwner } from "../lib/engine/used_codes.ts";
import { counterAt } from "../lib/sequence.ts";
import { counterText, markKey } from "../lib/cluster/fleet_keys.ts";

const ignore = !Deno.env.get("CI") &&
  (!(await canRunLab()) || !(await Deno.stat("/usr/bin/etcd").then(() => true, () => false)));

const SECRET2 = "HwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const SECRET3 = "PwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const FOR_S = 8;
const DOORS = `  web:
    secret: ${SECRET_B64}
    ports: 30000-30499
    length: 3
    bind_source: true
    share: web
    open: { for: ${FOR_S}s, nft: { port: 8080 } }
  solo:
    secret: ${SECRET2}
    ports: 31000-31499
    length: 3
    bind_source: true
    open: { for: 120s, nft: { port: 8081 } }
  glass:
    secret: ${SECRET3}
    ports: 32000-32499
    length: 3
    bind_source: true
    fleet: local
    open: { for: 120s, nft: { port: 8082 } }
`;

const doors = validateConfig({
  doors: {
    web: { secret: SECRET_B64, ports: "30000-30499", length: 3, bind_source: true },
    solo: { secret: SECRET2, ports: "31000-31499", length: 3, bind_source: true },
    glass: { secret: SECRET3, ports: "32000-32499", length: 3, bind_source: true },
  },
}).doors;
const door = (name: string): Door => doors.find((d) => d.name === name)!;

/** The ports of `door`'s code now for `source`. */
async function ports(name: string, source: string): Promise<number[]> {
  const code = await codeAt(door(name), Date.now(), parseAddress(source));
  return code.knocks.map((k) => k.port);
}

/** Waits until `check()` holds (polled every 100 ms), or fails naming `what`. */
async function eventually(check: () => boolean | Promise<boolean>, ms = 5000, what = "") {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what || check}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** "door NAME opened for SOURCE" lines in a log, by source. */
function opens(log: string, name: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of log.matchAll(new RegExp(`door ${name} opened for (\\S+)`, "g"))) {
    counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
  }
  return counts;
}

Deno.test({
  name: "fleet: two gateways on a three-member etcd share used codes and doors",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using lab = await FleetLab.create(420);
    for (const i of [0, 1, 2]) lab.startMember(i);
    await lab.etcdReady();
    await lab.enableAuth();
    const a = await lab.listen("a", lab.nodeConfig("a", DOORS));
    const b = await lab.listen("b", lab.nodeConfig("b", DOORS));
    const both = async (source: string, open: boolean) => {
      await eventually(async () =>
        (await lab.opened("a", "web")).includes(source) === open &&
        (await lab.opened("b", "web")).includes(source) === open, 10_000);
    };

    await t.step(
      "a knock on A opens the shared door on A and B, for the knocker only",
      async () => {
        await lab.knock([{
          source: FLEET.knocker,
          host: FLEET.a,
          ports: await ports("web", FLEET.knocker),
        }]);
        await both(FLEET.knocker, true);
        assert(!(await lab.opened("a", "web")).includes(FLEET.bystander));
        assert(!(await lab.opened("b", "web")).includes(FLEET.bystander));
        await eventually(() => b.log.text.includes(`door web opened for ${FLEET.knocker}`));
        assert(
          b.log.text.includes(
            `fleet: door web for ${FLEET.knocker}: gateway a opened it for group web`,
          ),
        );
        // status on B: the fleet's grant, decided by A, confirmed by both.
        const grants = async () => {
          const out = await lab.exec(
            "b",
            denoArgs("cli.ts", "status", "-c", `${lab.dir}/b.yaml`, "--json"),
          );
          return JSON.parse(new TextDecoder().decode(out.stdout)).fleet?.grants ?? [];
        };
        await eventually(async () => (await grants())[0]?.confirmed_by?.length === 2, 5000);
        const [grant] = await grants();
        assertEquals(
          [grant.door, grant.source, grant.decided_by, grant.confirmed_by],
          ["web", FLEET.knocker, "a", ["a", "b"]],
        );
      },
    );

    await t.step("the same code sent to B afterwards is refused as used", async () => {
      await lab.knock([{
        source: FLEET.knocker,
        host: FLEET.b,
        ports: await ports("web", FLEET.knocker),
      }]);
      await eventually(() =>
        b.log.text.includes(
          `fleet: not opening door web for ${FLEET.knocker}: its code was used already in the fleet`,
        )
      );
      // Not a failure line: fail2ban must not ban a knocker for a gateway's race.
      assert(!b.log.text.includes(`knock failed from ${FLEET.knocker}`));
    });

    await t.step("revoke on B closes the door on both", async () => {
      const out = await lab.exec("b", [
        ...denoArgs(
          "cli.ts",
          "revoke",
          "-c",
          `${lab.dir}/b.yaml`,
          "--door",
          "web",
          "--ip",
          FLEET.knocker,
        ),
      ]);
      assert(out.success, new TextDecoder().decode(out.stderr));
      await both(FLEET.knocker, false);
    });

    await t.step(
      "check --connect reaches every member with the gateway's credentials",
      async () => {
        const out = await lab.exec(
          "a",
          denoArgs("cli.ts", "check", "-c", `${lab.dir}/a.yaml`, "--connect"),
        );
        const text = new TextDecoder().decode(out.stdout);
        assertEquals(out.code, 0, text + new TextDecoder().decode(out.stderr));
        assertEquals(text.match(/version 3\.4\.\d+, member/g)?.length, 3);
        assert(text.includes("node a can take part"));
      },
    );

    await t.step("a gateway's etcd user reaches sesame's prefix only", async () => {
      const inside = await lab.etcdctl("a", "put", "/sesame/probe", "x");
      assert(inside.success, new TextDecoder().decode(inside.stderr));
      const outside = await lab.etcdctl("a", "put", "/elsewhere", "x");
      assert(!outside.success);
      assert(new TextDecoder().decode(outside.stderr).includes("permission denied"));
    });

    await t.step("a mark set far ahead in etcd is not honoured, and is logged", async () => {
      const source = FLEET.many(5);
      const web = door("web");
      assert(web.kind === "rotating");
      const owner = codeOwner(web, source);
      const ahead = counterAt(Date.now(), web.periodMs) + 1000;
      const put = await lab.etcdctl("root", "put", markKey("/sesame/", owner), counterText(ahead));
      assert(put.success, new TextDecoder().decode(put.stderr));
      await lab.knock([{ source, host: FLEET.a, ports: await ports("web", source) }]);
      await both(source, true);
      assert(a.log.text.includes("the fleet's mark for door web is"));
    });

    await t.step("with one member killed, knocks still open on both", async () => {
      await lab.killMember(0);
      await lab.etcdReady();
      const source = FLEET.many(0);
      await lab.knock([{ source, host: FLEET.a, ports: await ports("web", source) }]);
      await both(source, true);
    });

    await t.step(
      "with two members killed, knocks are refused; open doors close at their time; the break-glass door opens",
      async () => {
        const open = FLEET.many(0); // opened in the step before, for FOR_S seconds
        await lab.killMember(1);
        const source = FLEET.many(1);
        await lab.knock([{ source, host: FLEET.a, ports: await ports("web", source) }]);
        await eventually(
          () =>
            a.log.text.includes(
              `fleet: not opening door web for ${source}: no etcd quorum answered`,
            ),
          10_000,
        );
        assert(!(await lab.opened("a", "web")).includes(source));
        assert(!(await lab.opened("b", "web")).includes(source));
        await both(open, false); // the kernel's timeout, without etcd
        const glass = FLEET.many(2);
        await lab.knock([{ source: glass, host: FLEET.a, ports: await ports("glass", glass) }]);
        await eventually(async () => (await lab.opened("a", "glass")).includes(glass), 10_000);
        assert(a.log.text.includes("falls back to this node's own store (fleet: local)"));
        // Both gateways say they are cut off (a member without a leader ends its watches).
        const connected = async (node: "a" | "b") => {
          const out = await lab.exec(
            node,
            denoArgs("cli.ts", "status", "-c", `${lab.dir}/${node}.yaml`, "--json"),
          );
          return JSON.parse(new TextDecoder().decode(out.stdout)).fleet?.connected;
        };
        await eventually(
          async () => (await connected("a")) === false && (await connected("b")) === false,
          15_000,
        );
        // The metrics count it apart from failed knocks.
        const metrics = await lab.exec("a", [
          "bash",
          "-c",
          'exec 3<>/dev/tcp/127.0.0.1/9464; printf "GET /metrics HTTP/1.0\\r\\n\\r\\n" >&3; cat <&3',
        ]);
        const text = new TextDecoder().decode(metrics.stdout);
        assert(
          /sesame_fleet_refusals_total\{door="web",reason="unavailable"\} [1-9]/.test(text),
          text,
        );
        assert(text.includes("sesame_fleet_connected "));
        // check --connect says the fleet cannot be used, with exit 1.
        const check = await lab.exec(
          "a",
          denoArgs("cli.ts", "check", "-c", `${lab.dir}/a.yaml`, "--connect"),
        );
        assertEquals(check.code, 1);
        assert(
          new TextDecoder().decode(check.stdout).includes(
            "cannot read and write /sesame/ with a quorum",
          ),
        );
      },
    );

    await t.step("with the members back, knocks open again without a restart", async () => {
      lab.startMember(0);
      lab.startMember(1);
      await lab.etcdReady();
      const source = FLEET.many(3);
      await eventually(async () => {
        await lab.knock([{ source, host: FLEET.a, ports: await ports("web", source) }]);
        return (await lab.opened("a", "web")).includes(source);
      }, 20_000);
      await both(source, true);
    });

    await t.step(
      "one code sent to A and B at the same moment, 200 times: it opens at most once each time",
      async () => {
        const sources = Array.from({ length: 200 }, (_, i) => FLEET.many(10 + i));
        const plan = [];
        for (const source of sources) {
          const p = await ports("solo", source);
          plan.push({ source, host: FLEET.a, ports: p }, { source, host: FLEET.b, ports: p });
        }
        await lab.knock(plan);
        await eventually(() => {
          const total = [
            ...opens(a.log.text, "solo").values(),
            ...opens(b.log.text, "solo").values(),
          ]
            .reduce((x, y) => x + y, 0);
          return total >= 190;
        }, 20_000);
        await new Promise((r) => setTimeout(r, 1000)); // any late second open would show now
        const onA = opens(a.log.text, "solo"), onB = opens(b.log.text, "solo");
        const twice = sources.filter((s) => (onA.get(s) ?? 0) + (onB.get(s) ?? 0) > 1);
        assertEquals(twice, []);
      },
    );

    await t.step(
      "a node SIGKILLed during a burst opens no code twice after its restart",
      async () => {
        const sources = Array.from({ length: 150 }, (_, i) => FLEET.many(250 + i));
        const plan = await Promise.all(
          sources.map(async (source) => ({
            source,
            host: FLEET.a,
            ports: await ports("solo", source),
          })),
        );
        const base = opens(a.log.text, "solo").size;
        const burst = lab.knock(plan);
        // Killed once some of the burst opened, while the rest is still arriving.
        await eventually(() => opens(a.log.text, "solo").size > base + 10, 20_000);
        a.child.kill("SIGKILL");
        await a.child.status;
        await burst;
        const before = opens(a.log.text, "solo");
        const a2 = await lab.listen("a", lab.nodeConfig("a", DOORS));
        // The same codes again, to the restarted A and to B.
        await lab.knock([...plan, ...plan.map((p) => ({ ...p, host: FLEET.b }))]);
        await new Promise((r) => setTimeout(r, 3000)); // a late open would show by now
        const again = opens(a2.log.text, "solo"), onB = opens(b.log.text, "solo");
        const twice = sources.filter((s) =>
          (before.get(s) ?? 0) + (again.get(s) ?? 0) + (onB.get(s) ?? 0) > 1
        );
        assertEquals(twice, []);
      },
    );
  },
});
