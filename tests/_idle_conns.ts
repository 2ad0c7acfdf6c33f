/**
 * Idle connections for hardening tests: opens up to `count` TCP connections to `port`
 * (from loopback sources 127.S.x.y, 64 at a time), sends nothing on them, holds them for
 * `hold` seconds, then closes them all. Loopback only; bounded by count and by 60 s.
 * Prints how many connected.
 */
import net from "node:net";
const [host, port, countText, holdText, subnet] = Deno.args;
if (!host.startsWith("127.")) throw new Error("loopback only");
const count = Math.min(Number(countText), 30_000);
const deadline = Date.now() + 60_000;
const sockets: net.Socket[] = [];
let connected = 0;
const one = (i: number) =>
  new Promise<void>((resolve) => {
    const s = net.connect({
      host,
      port: Number(port),
      localAddress: `127.${subnet}.${(i >> 8) & 255}.${(i & 255) || 1}`,
    });
    sockets.push(s);
    const timer = setTimeout(resolve, 1000);
    s.once("connect", () => {
      connected++;
      clearTimeout(timer);
      resolve();
    });
    s.once("error", () => {
      clearTimeout(timer);
      resolve();
    });
  });
for (let i = 0; i < count && Date.now() < deadline; i += 64) {
  await Promise.all(Array.from({ length: Math.min(64, count - i) }, (_, j) => one(i + j)));
}
console.error(`holding ${connected}`);
await new Promise((r) => setTimeout(r, Number(holdText) * 1000));
for (const s of sockets) s.destroy();
console.log(connected);
