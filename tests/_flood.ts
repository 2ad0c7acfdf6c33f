/**
 * A bounded flood for hardening tests: one UDP datagram to `port` from each of `count`
 * loopback sources 127.S.x.y, as fast as it can, for at most `seconds`. Loopback only.
 * Prints how many it sent.
 */
const [host, portText, countText, secondsText, subnetText] = Deno.args;
if (!host.startsWith("127.")) throw new Error("loopback only");
const ports = portText.split(",").map(Number);
const count = Math.min(Number(countText), 65_000);
const deadline = Date.now() + Number(secondsText) * 1000;
const subnet = Number(subnetText);
let sent = 0;
for (let i = 0; i < count && Date.now() < deadline; i++) {
  const hostname = `127.${subnet}.${(i >> 8) & 255}.${i & 255}`;
  const socket = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  try {
    await socket.send(new Uint8Array([0]), {
      transport: "udp",
      hostname: host,
      port: ports[i % ports.length],
    });
    sent++;
  } finally {
    socket.close();
  }
}
console.log(sent);
