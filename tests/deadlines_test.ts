/** Deadlines: one timer for every open door's close, on the manual clock. */
import { assertEquals } from "./_assert.ts";
import { Deadlines } from "../lib/daemon/deadlines.ts";
import { ManualClock } from "../lib/testing/mod.ts";

Deno.test("Deadlines: items come due in deadline order, once, at their last deadline; cancelled ones never", () => {
  const clock = new ManualClock(0);
  const due: [string, number][] = [];
  const deadlines = new Deadlines<string>(
    (item) => due.push([item, clock.monotonic()]),
    clock,
  );
  deadlines.schedule("late", 120);
  deadlines.schedule("moved", 10);
  deadlines.schedule("early", 30);
  deadlines.schedule("moved", 80); // extended: its first deadline no longer counts
  deadlines.schedule("gone", 40);
  deadlines.cancel("gone");
  assertEquals(deadlines.size, 3);
  clock.advance(79);
  assertEquals(due, [["early", 30]], "never before its deadline (a door must not close early)");
  clock.advance(200);
  assertEquals(due, [["early", 30], ["moved", 80], ["late", 120]]);
  assertEquals(deadlines.size, 0);
  assertEquals(clock.pending, 0, "no timer left once every deadline came");
});

Deno.test("Deadlines: a callback may schedule again, and clear() leaves no timer behind", () => {
  const clock = new ManualClock(0);
  let rounds = 0;
  const deadlines: Deadlines<string> = new Deadlines<string>((item) => {
    if (++rounds < 3) deadlines.schedule(item, 5); // a failed close retried
  }, clock);
  deadlines.schedule("retry", 5);
  clock.advance(14);
  assertEquals(rounds, 2);
  clock.advance(1);
  assertEquals(rounds, 3);
  deadlines.schedule("pending", 60_000);
  deadlines.clear();
  assertEquals(deadlines.size, 0);
  assertEquals(clock.pending, 0);
});

Deno.test("Deadlines: 20 000 deadlines cost one timer; the earliest new one re-arms it", () => {
  const clock = new ManualClock(0);
  const due: number[] = [];
  const deadlines = new Deadlines<number>((item) => due.push(item), clock);
  for (let i = 0; i < 20_000; i++) deadlines.schedule(i, 60_000 + i);
  assertEquals(clock.pending, 1, "one timer for all");
  deadlines.schedule(-1, 10); // earlier than all: must not wait for the armed one
  clock.advance(10);
  assertEquals(due, [-1]);
  assertEquals(deadlines.size, 20_000);
  assertEquals(clock.pending, 1);
  deadlines.clear();
});

Deno.test("Deadlines: on the system clock, an item comes due after its real delay", async () => {
  const due: string[] = [];
  const start = performance.now();
  let took = 0;
  const came = new Promise<void>((resolve) => {
    const deadlines = new Deadlines<string>((item) => {
      due.push(item);
      took = performance.now() - start;
      resolve();
    });
    deadlines.schedule("soon", 20);
  });
  await came; // the one test of the real timer: 20 ms
  assertEquals(due, ["soon"]);
  assertEquals(took >= 19, true, `came after ${took} ms`);
});
