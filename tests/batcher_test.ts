import { assertEquals } from "./_assert.ts";
import { Batcher } from "../lib/actions/batcher.ts";
import { NftFirewall } from "../lib/actions/nft.ts";
import { validateConfig } from "../lib/config/validate.ts";
import type { OpenRecord } from "../lib/store/store.ts";
import { RecordingRunner } from "./_daemon.ts";

Deno.test("Batcher: an exclusive job runs between the batches before it and after it, alone", async () => {
  const log: string[] = [];
  const batcher = new Batcher<string>(async (items) => {
    log.push(`flush ${items.join(",")}`);
    await new Promise((r) => setTimeout(r, 5));
  });
  const done = [
    batcher.add("a"),
    batcher.exclusive(async () => {
      log.push("exclusive");
      await new Promise((r) => setTimeout(r, 5));
    }),
    batcher.add("b"),
    batcher.add("c"),
  ];
  await Promise.all(done);
  assertEquals(log, ["flush a", "exclusive", "flush b,c"]);
});

Deno.test("NftFirewall: a table replacement never overwrites an opening made while it waited", async () => {
  const runner = new RecordingRunner();
  const nft = new NftFirewall(runner, { mode: "batch", nftPath: "/usr/sbin/nft" });
  const { doors } = validateConfig({
    doors: { ssh: { sequence: [7000], open: { nft: { port: 22 } } } },
  });
  const grant = { kind: "nft" as const, ports: [22], protocol: "tcp" as const };
  const open: OpenRecord[] = [];
  const record = (source: string): OpenRecord => ({
    door: "ssh",
    source,
    until: Date.now() + 60_000,
    close: null,
    firewall: grant,
  });
  const first = record("192.0.2.1");
  open.push(first);
  const opening = nft.open(first); // a batch under way
  // A repair reads the open doors when it writes the table, not when it was asked.
  const repair = nft.start(doors, () => open);
  const second = record("192.0.2.2");
  open.push(second);
  await Promise.all([opening, repair, nft.open(second)]);
  const scripts = runner.inputs.filter((i): i is string => typeof i === "string");
  const table = scripts.findIndex((s) => s.includes("table inet sesame {"));
  assertEquals(scripts[table].includes("192.0.2.1") && scripts[table].includes("192.0.2.2"), true);
  assertEquals(
    scripts.findIndex((s) => s.includes("192.0.2.1") && !s.includes("table")) < table,
    true,
  );
  assertEquals(scripts.findLastIndex((s) => s.includes("192.0.2.2")) > table, true);
  await nft.shutdown();
});
