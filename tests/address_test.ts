/** parseAddress's hand-written IPv4 path agrees with ipaddr.js on every input it takes. */
import { assertEquals } from "./_assert.ts";
import { parseAddress, parseWithIpaddr as reference } from "../lib/address.ts";

Deno.test("parseAddress() agrees with ipaddr.js on IPv4 in every form, and on near misses", () => {
  const rand = (n: number) => Math.floor(Math.random() * n);
  const cases = [
    "0.0.0.0",
    "255.255.255.255",
    "256.1.1.1",
    "1.2.3",
    "1.2.3.4.5",
    "01.2.3.4",
    "1.2.3.04",
    "1.2.3.4 ",
    " 1.2.3.4",
    "1..3.4",
    ".1.2.3",
    "1.2.3.",
    "1.2.3.4%eth0",
    "1.2.3.1000",
    "0x1.2.3.4",
    "1.2.3.-4",
    "1.2.3.+4",
    "::ffff:1.2.3.4",
    "::1",
    "1.2.3.4/24",
    "١.2.3.4",
    "000.0.0.0",
    "1.2.3.0255",
  ];
  const alphabet = "0123456789.";
  for (let i = 0; i < 20_000; i++) {
    if (i % 2 === 0) {
      cases.push(Array.from({ length: 4 }, () => String(rand(i % 4 === 0 ? 300 : 256))).join("."));
    } else {
      cases.push(Array.from({ length: 1 + rand(16) }, () => alphabet[rand(11)]).join(""));
    }
  }
  for (const text of cases) assertEquals(parseAddress(text), reference(text), JSON.stringify(text));
});
