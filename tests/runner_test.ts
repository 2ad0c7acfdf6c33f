import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { spawnSession, WorkerRunner } from "../lib/actions/runner.ts";
import { substitute } from "../lib/actions/command.ts";
import { tempDir } from "./_cli.ts";

Deno.test("WorkerRunner runs argv without a shell and reports exit codes", async () => {
  await using dir = await tempDir();
  const runner = new WorkerRunner();
  try {
    const literal = "x;touch pwned $(touch pwned2)";
    assertEquals(
      (await runner.run(["/usr/bin/touch", `${dir.path}/${literal}`], { timeoutMs: 5000 })).code,
      0,
    );
    assertEquals(
      [...Deno.readDirSync(dir.path)].map((e) => e.name),
      [literal],
      "one file, named literally",
    );
    const failed = await runner.run(["/usr/bin/ls", `${dir.path}/missing`], { timeoutMs: 5000 });
    assertEquals([failed.code, failed.timedOut], [2, false]);
    assert(failed.error.includes("No such file"), failed.error);
    const missing = await runner.run(["/nonexistent/program"], { timeoutMs: 5000 });
    assertEquals(missing.code, -1);
  } finally {
    runner.close();
  }
});

Deno.test("WorkerRunner kills a command that outlives its time limit", async () => {
  const runner = new WorkerRunner();
  try {
    const start = Date.now();
    const result = await runner.run(["/usr/bin/sleep", "10"], { timeoutMs: 300 });
    assertEquals(result.timedOut, true);
    assert(Date.now() - start < 3000, "killed well before it ended by itself");
  } finally {
    runner.close();
  }
});

Deno.test("substitute() fills {ip} and {door} per argument and refuses non-canonical values", () => {
  assertEquals(
    substitute(["/x", "--ip={ip}", "{door}-{ip}", "{other}"], {
      source: "2001:db8::1",
      door: "ssh",
    }),
    ["/x", "--ip=2001:db8::1", "ssh-2001:db8::1", "{other}"],
  );
  assertThrows(
    () => substitute(["/x", "{ip}"], { source: "1.2.3.4; rm -rf /", door: "ssh" }),
    TypeError,
  );
  assertThrows(
    () => substitute(["/x", "{ip}"], { source: "::ffff:1.2.3.4", door: "ssh" }),
    TypeError,
  );
  assertThrows(() => substitute(["/x", "{door}"], { source: "1.2.3.4", door: "a b" }), TypeError);
});

Deno.test("WorkerRunner refuses commands beyond its queue cap instead of growing without bound", async () => {
  const runner = new WorkerRunner(3);
  try {
    const results = await Promise.all(
      Array.from({ length: 5 }, () => runner.run(["/usr/bin/sleep", "0.2"], { timeoutMs: 5000 })),
    );
    assertEquals(results.map((r) => r.code), [0, 0, 0, -1, -1]);
    assert(results[4].error.includes("more than 3 commands waiting"), results[4].error);
  } finally {
    runner.close();
  }
});

Deno.test("WorkerRunner never refuses an essential command (a close), even with a full queue", async () => {
  const runner = new WorkerRunner(1);
  try {
    const [open, close] = await Promise.all([
      runner.run(["/usr/bin/sleep", "0.2"], { timeoutMs: 5000 }),
      runner.run(["/usr/bin/true"], { timeoutMs: 5000, essential: true }),
    ]);
    assertEquals([open.code, close.code], [0, 0]);
  } finally {
    runner.close();
  }
});

Deno.test("an nft session keeps no history file (nft -i writes $HOME/.nft.history, / without HOME)", async () => {
  // Each opening is a line; a kept history grew without bound and slowed every line.
  const places = ["/.nft.history", "/dev/null/.nft.history"];
  const stamp = (p: string) => {
    try {
      return String(Deno.statSync(p).mtime?.getTime());
    } catch {
      return "absent";
    }
  };
  const was = places.map(stamp);
  const session = spawnSession(["/usr/sbin/nft", "-i"]);
  const writer = session.stdin.getWriter();
  await writer.write(new TextEncoder().encode("list tables inet\n"));
  await writer.close();
  await Promise.all([session.status, session.stdout.cancel(), session.stderr.cancel()]);
  assertEquals(places.map(stamp), was, "no history written");
});
