/** parseAddress's hand-written IPv4 path agrees with ipaddr.js on every input it takes. */
import { assertEquals } from "./_assert.ts";
import { parseAddress, parseWithIpaddr as reference } from "../lib/address.ts";
import { BROWSER_SCRIPT } from "../lib/page/browser_script.ts";

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

/** The page's own address parser (it runs in the browser), taken out of its script. */
function pageParser(): (text: string) => { family: number; bytes: number[] } | null {
  const start = BROWSER_SCRIPT.indexOf("  function parseAddress(text) {");
  const end = BROWSER_SCRIPT.indexOf("\n  }\n", start);
  if (start < 0 || end < 0) throw new Error("the page's parseAddress was not found");
  return new Function(`${BROWSER_SCRIPT.slice(start, end + 4)}return parseAddress;`)();
}

Deno.test("the page reads a typed address as the server and the CLI do, or refuses it as they do", () => {
  const page = pageParser();
  const cases = [
    "192.0.2.7",
    "010.0.0.1", // leading zeros: refused by both (octal to some readers)
    "1.2.3.04",
    "::ffff:192.0.2.7",
    "::ffff:010.0.0.1",
    "::1.2.3.4", // IPv4-compatible: refused by both (IPv4 to some readers, IPv6 to others)
    "::0.0.0.1",
    "0:0:0:0:0:0:1.2.3.4",
    "::102:304",
    "2001:db8::1.2.3.4",
    "1:2:3:4:5:6:1.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::",
    "::1",
    "2001:db8::7",
    "2001:DB8::7",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "::ffff:1.2.3",
    "::1.2.3.4.5",
    "1.2.3.4::",
    "fe80::1%eth0",
  ];
  const read = (a: { family: number; bytes: ArrayLike<number> } | null | undefined) =>
    a ? `IPv${a.family} ${[...Array.from(a.bytes)].join(".")}` : "refused";
  const differ = cases.flatMap((text) => {
    const server = read(parseAddress(text)), browser = read(page(text));
    return server === browser ? [] : [`${text}: server ${server}, page ${browser}`];
  });
  assertEquals(differ, []);
});
