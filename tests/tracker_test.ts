import { assertEquals } from "./_assert.ts";
import {
  advance,
  encodeSequence,
  knockCode,
  type Progress,
  type Step,
} from "../lib/engine/tracker.ts";

const SEQ = encodeSequence([
  { port: 7000, protocol: "tcp" },
  { port: 8000, protocol: "tcp" },
  { port: 9000, protocol: "udp" },
  { port: 6000, protocol: "tcp" },
]);
const OPTS = { timeoutMs: 1000, reorderWindowMs: 5 };
const T = (port: number) => knockCode(port, "tcp");
const U = (port: number) => knockCode(port, "udp");

/** Feeds knocks [code, time] to one progress and returns each step's kind. */
function run(knocks: [number, number][], options = OPTS): Step["kind"][] {
  let p: Progress | undefined;
  const kinds: Step["kind"][] = [];
  for (const [code, at] of knocks) {
    const step = advance(p, SEQ, code, at, options);
    kinds.push(step.kind);
    p = step.kind === "progress" || step.kind === "reset" ? step.progress : undefined;
  }
  return kinds;
}

Deno.test("advance() completes on the right knocks in order", () => {
  assertEquals(run([[T(7000), 0], [T(8000), 10], [U(9000), 20], [T(6000), 30]]), [
    "progress",
    "progress",
    "progress",
    "complete",
  ]);
});

Deno.test("advance() resets on a stray pool knock in the middle", () => {
  const kinds = run([[T(7000), 0], [T(8000), 10], [T(7777), 20], [U(9000), 30], [T(6000), 40]]);
  assertEquals(kinds.slice(0, 3), ["progress", "progress", "reset"]);
  assertEquals(kinds.includes("complete"), false);
});

Deno.test("advance() restarts at position 1 when the stray knock is the first of the sequence", () => {
  assertEquals(run([[T(7000), 0], [T(7000), 10], [T(8000), 20], [U(9000), 30], [T(6000), 40]]), [
    "progress",
    "reset",
    "progress",
    "progress",
    "complete",
  ]);
});

Deno.test("advance() treats TCP and UDP on the same port as different knocks", () => {
  assertEquals(
    run([[T(7000), 0], [T(8000), 10], [T(9000), 20], [T(6000), 30]]).includes("complete"),
    false,
  );
});

Deno.test("advance() refuses a sequence slower than the timeout", () => {
  assertEquals(
    run([[T(7000), 0], [T(8000), 400], [U(9000), 800], [T(6000), 1001]]).includes("complete"),
    false,
  );
  assertEquals(
    run([[T(7000), 0], [T(8000), 400], [U(9000), 800], [T(6000), 1000]]).at(-1),
    "complete",
  );
});

Deno.test("advance() tolerates reordering inside the window and no more", async (t) => {
  await t.step("two knocks swapped 2 ms apart complete", () => {
    assertEquals(
      run([[T(7000), 0], [U(9000), 100], [T(8000), 102], [T(6000), 200]]).at(-1),
      "complete",
    );
  });
  await t.step("the first two swapped complete", () => {
    assertEquals(
      run([[T(8000), 0], [T(7000), 1], [U(9000), 100], [T(6000), 200]]).at(-1),
      "complete",
    );
  });
  await t.step("three knocks in reverse inside the window complete", () => {
    assertEquals(
      run([[T(7000), 0], [T(6000), 100], [U(9000), 101], [T(8000), 102]]).at(-1),
      "complete",
    );
  });
  await t.step("a swap with a 50 ms gap is refused", () => {
    assertEquals(
      run([[T(7000), 0], [U(9000), 100], [T(8000), 150], [T(6000), 200]]).includes("complete"),
      false,
    );
  });
  await t.step("wrong order sent slowly never completes", () => {
    assertEquals(
      run([[T(8000), 0], [T(7000), 100], [U(9000), 200], [T(6000), 300]]).includes("complete"),
      false,
    );
  });
  await t.step("with the window at 0 any swap is refused", () => {
    assertEquals(
      run([[T(7000), 0], [U(9000), 100], [T(8000), 100], [T(6000), 200]], {
        ...OPTS,
        reorderWindowMs: 0,
      })
        .includes("complete"),
      false,
    );
  });
  await t.step("the same early knock twice resets", () => {
    assertEquals(
      run([[T(7000), 0], [U(9000), 100], [U(9000), 101], [T(8000), 102], [T(6000), 103]]).includes(
        "complete",
      ),
      false,
    );
  });
});

Deno.test("advance() completes a one-knock sequence on its knock", () => {
  const one = encodeSequence([{ port: 1, protocol: "tcp" }]);
  assertEquals(advance(undefined, one, T(1), 0, OPTS).kind, "complete");
  assertEquals(advance(undefined, one, T(2), 0, OPTS).kind, "none");
});
