/**
 * The capture intake's parser on what the real tcpdump wrote (tests/golden/nflog_knocks.pcap:
 * recorded with `tcpdump -i nflog:5 -U -w -` in a namespace while a client sent two IPv4
 * SYNs and an IPv6 datagram "hello"), cut at every chunk size, and on damaged input.
 */
import { assert, assertEquals } from "./_assert.ts";
import { type CapturedPacket, PcapFormatError, PcapParser } from "../lib/capture/pcap.ts";

const golden = await Deno.readFile(new URL("golden/nflog_knocks.pcap", import.meta.url));
const brief = (p: CapturedPacket) =>
  `${p.source} ${p.port}/${p.protocol} ${new TextDecoder().decode(p.payload)}`;

Deno.test("pcap: the recorded NFLOG stream gives its three knocks, however the pipe cuts it", () => {
  for (let size = 1; size <= 80; size++) {
    const parser = new PcapParser();
    const packets: CapturedPacket[] = [];
    for (let i = 0; i < golden.length; i += size) {
      packets.push(...parser.push(golden.slice(i, i + size)));
    }
    assertEquals(packets.map(brief), [
      "10.88.0.2 30001/tcp ",
      "10.88.0.2 30002/tcp ",
      "fd88::2 30003/udp hello",
    ], `chunks of ${size}`);
    assertEquals(parser.skipped, 0);
    assert(packets.every((p) => p.at === packets[0].at || p.at > 1_700_000_000_000));
  }
});

Deno.test("pcap: not pcap, or not NFLOG, ends the stream with a PcapFormatError; damaged records are skipped, never a crash", () => {
  let thrown: unknown;
  try {
    new PcapParser().push(new TextEncoder().encode("this is not a pcap stream at all"));
  } catch (e) {
    thrown = e;
  }
  assert(thrown instanceof PcapFormatError);
  const ethernet = golden.slice(0, 24);
  new DataView(ethernet.buffer).setUint32(20, 1, true); // link type Ethernet
  assertEquals(
    (() => {
      try {
        new PcapParser().push(ethernet);
      } catch (e) {
        return (e as Error).message;
      }
    })(),
    "link type 1, not NFLOG (239)",
  );
  // Bounded random damage past the header: only PcapFormatError may escape, and every
  // packet that comes out is a well-formed knock.
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 2000; round++) {
    const bytes = golden.slice();
    for (let i = 0; i < 4; i++) {
      bytes[24 + Math.floor(random() * (bytes.length - 24))] = random() * 256;
    }
    const parser = new PcapParser();
    try {
      for (const p of parser.push(bytes)) {
        assert(p.port >= 0 && p.port <= 65535 && (p.protocol === "tcp" || p.protocol === "udp"));
      }
    } catch (e) {
      assert(e instanceof PcapFormatError, String(e));
    }
  }
});
