/** Importing the JSON state of earlier versions: its used codes must match what the engine refuses. */
import { assertEquals } from "./_assert.ts";
import { parseState } from "../lib/store/json_import.ts";
import { codeOwner } from "../lib/engine/used_codes.ts";
import { UsedCodes } from "../lib/engine/used_codes.ts";
import { validateConfig } from "../lib/config/validate.ts";
import { SECRET_B64 } from "./_daemon.ts";

Deno.test("json import: a version 1 used code of an IPv6 bind_source door is refused by the engine's key", () => {
  const { doors } = validateConfig({
    doors: {
      near: {
        secret: SECRET_B64,
        ports: "21000-21099",
        bind_source: true,
        source_prefix: { ipv6: 64 },
      },
    },
  });
  const door = doors[0];
  if (door.kind !== "rotating") throw new Error("a rotating door");
  // 2001:db8:0:7::/64 as version 1 wrote it: family 6, the 16 bytes, the prefix.
  const bytes = [32, 1, 13, 184, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0].join(".");
  const state = parseState(
    `{"version":1,"used":[["near/59000000/6:${bytes}/64",1000]],"open":[]}`,
  );
  const owner = codeOwner(door, "2001:db8:0:7::99");
  assertEquals(state.used[0].prefix, owner.prefix);
  const used = new UsedCodes(state.used.map((c) => ({ ...c, secret: door.fingerprint })));
  assertEquals(used.isUsed(owner, 59_000_000), true, "the imported mark refuses the code");
});

Deno.test("json import: a version 1 used code of an IPv4 bind_source door keeps its prefix", () => {
  const state = parseState('{"version":1,"used":[["near/5/4:192.0.2.0/24",1000]],"open":[]}');
  assertEquals(state.used, [{ door: "near", counter: 5, prefix: "192.0.2.0/24" }]);
});
