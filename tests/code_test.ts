import { assertEquals } from "./_assert.ts";
import { counterForKnock } from "../lib/window.ts";
import { validateConfig } from "../lib/config/validate.ts";
import type { RotatingDoor } from "../lib/config/types.ts";

const door = (skew: number) =>
  validateConfig({
    doors: {
      d: {
        secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        ports: "1000-1100",
        skew,
        period: "30s",
      },
    },
  }).doors[0] as RotatingDoor;

Deno.test("counterForKnock() keeps the whole sequence inside the server's window near a boundary", () => {
  const start = 1000 * 30_000; // the start of counter 1000
  // Well inside a period: the current counter.
  assertEquals(counterForKnock(door(1), start + 10_000, 2000), 1000);
  // The knocks straddle the boundary: the next counter, acceptable at both ends with skew 1.
  assertEquals(counterForKnock(door(1), start + 29_000, 2000), 1001);
  // Without skew the next counter is not yet acceptable at the start: stay on the current
  // one (the client waits for the boundary in that case before it computes the code).
  assertEquals(counterForKnock(door(0), start + 29_000, 2000), 1000);
});
