/** Deadlines: one timer for every open door's close. */
import { assertEquals } from "./_assert.ts";
import { sleep } from "./_daemon.ts";
import { Deadlines } from "../lib/daemon/deadlines.ts";

Deno.test("Deadlines: items come due in deadline order, once, at their last deadline; cancelled ones never", async () => {
  const due: [string, number][] = [];
  const start = performance.now();
  const deadlines = new Deadlines<string>((item) => due.push([item, performance.now() - start]));
  try {
    deadlines.schedule("late", 120);
    deadlines.schedule("moved", 10);
    deadlines.schedule("early", 30);
    deadlines.schedule("moved", 80); // extended: its first deadline no longer counts
    deadlines.schedule("gone", 40);
    deadlines.cancel("gone");
    assertEquals(deadlines.size, 3);
    await sleep(200);
    assertEquals(due.map(([item]) => item), ["early", "moved", "late"]);
    const at = Object.fromEntries(due);
    // Never before its deadline (a door must not close early).
    assertEquals([at.early >= 30, at.moved >= 80, at.late >= 120], [true, true, true]);
    assertEquals(deadlines.size, 0);
  } finally {
    deadlines.clear();
  }
});

Deno.test("Deadlines: a callback may schedule again, and clear() leaves no timer behind", async () => {
  let rounds = 0;
  const deadlines: Deadlines<string> = new Deadlines<string>((item) => {
    if (++rounds < 3) deadlines.schedule(item, 5); // a failed close retried
  });
  deadlines.schedule("retry", 5);
  await sleep(100);
  assertEquals(rounds, 3);
  deadlines.schedule("pending", 60_000);
  deadlines.clear(); // the test sanitizer fails the test if a timer is left
  assertEquals(deadlines.size, 0);
});

Deno.test("Deadlines: 20 000 deadlines cost one timer; the earliest new one re-arms it", async () => {
  const due: number[] = [];
  const deadlines = new Deadlines<number>((item) => due.push(item));
  try {
    for (let i = 0; i < 20_000; i++) deadlines.schedule(i, 60_000 + i);
    deadlines.schedule(-1, 10); // earlier than all: must not wait for the armed one
    await sleep(100);
    assertEquals(due, [-1]);
    assertEquals(deadlines.size, 20_000);
  } finally {
    deadlines.clear();
  }
});
