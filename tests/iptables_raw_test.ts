/** The iptables backend's raw chains, rendered: multiport's limit and the admin's tracked accepts. */
import { assertEquals } from "./_assert.ts";
import { multiportLists, trackedAccept } from "../lib/actions/iptables_raw.ts";

Deno.test("iptables raw: ports go in multiport lists of at most 15 slots, a range counting two", () => {
  // 20 single ports apart, then a range: 15 + 5 singles, the range with them.
  const singles = Array.from({ length: 20 }, (_, i) => 7000 + 2 * i);
  const lists = multiportLists([...singles, ...Array.from({ length: 100 }, (_, i) => 20000 + i)]);
  assertEquals(lists.length, 2);
  assertEquals(lists[0].split(",").length, 15);
  assertEquals(lists[1], `${singles.slice(15).join(",")},20000:20099`);
  // Eight ranges take 16 slots: seven in the first list.
  const ranges = multiportLists(
    Array.from({ length: 8 }, (_, i) => [100 * i + 1000, 100 * i + 1001]).flat(),
  );
  assertEquals(ranges.map((l) => l.split(",").length), [7, 1]);
  assertEquals(multiportLists([]), []);
});

Deno.test("iptables raw: an admin's rule sorting by state NEW is found (accept or jump); sesame's own rules, other states and NEW with UNTRACKED are not", () => {
  const rules = [
    "-P INPUT ACCEPT",
    "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A SESAME -m conntrack --ctstate NEW -j ACCEPT",
  ];
  assertEquals(trackedAccept(rules.join("\n")), undefined);
  // Whatever it does with them (a jump to a chain of accepted ports, a drop): untracked
  // knocks would miss it.
  const jump = "-A INPUT -p tcp -m tcp --syn -m conntrack --ctstate NEW -j TCP";
  assertEquals(trackedAccept([...rules, jump].join("\n")), jump);
  const mine = "-A INPUT -p tcp -m tcp --dport 20000:20099 -m state --state NEW -j ACCEPT";
  assertEquals(trackedAccept([...rules, mine].join("\n")), mine);
  const ct = "-A INPUT -p tcp -m conntrack --ctstate NEW,RELATED -j ACCEPT";
  assertEquals(trackedAccept([...rules, ct].join("\n")), ct);
  // Taking untracked packets too, it lets knocks in.
  const both = "-A INPUT -p tcp -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT";
  assertEquals(trackedAccept([...rules, both].join("\n")), undefined);
});

Deno.test("untracked knocks: rules they could fall foul of are found, in iptables and nft, and harmless ones are not", async () => {
  const { nftStateRule } = await import("../lib/actions/untrack_decision.ts");
  const table = (rule: string) =>
    `table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\t${rule}\n\t}\n}\n`;
  for (
    const rule of [
      "ct state new accept",
      "tcp flags syn ct state new jump ports",
      "ct state vmap { established : accept, related : accept, new : jump ports }",
      "ct state & new == new accept",
      "ct state vmap @states", // a named map: its contents are not listed
      "ct state @states tcp dport 22 accept",
      "ct state { invalid, untracked } drop", // drops untracked knocks outright
      "ct state != { established, related } drop",
    ]
  ) assertEquals(nftStateRule(table(rule)) !== undefined, true, rule);
  for (
    const rule of [
      "ct state established,related accept",
      "ct state invalid drop", // untracked packets are not invalid
      "ct state { new, untracked } accept",
      "tcp dport 20000-20099 accept",
    ]
  ) assertEquals(nftStateRule(table(rule)), undefined, rule);
  // sesame's own table is not the admin's.
  assertEquals(
    nftStateRule(table("ct state new accept").replace("inet filter", "inet sesame")),
    undefined,
  );
  for (
    const line of [
      "-A INPUT -m conntrack --ctstate INVALID,UNTRACKED -j DROP",
      "-A INPUT -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP",
      "-A INPUT -m state --state NEW -j ACCEPT",
    ]
  ) assertEquals(trackedAccept(line), line);
  assertEquals(trackedAccept("-A INPUT -m conntrack --ctstate INVALID -j DROP"), undefined);
});
