/**
 * The fleet lab's knocker: every entry of the plan at once, each entry's ports in order
 * (a TCP connect from `source` to `host`, the next as soon as the last ended). Only to
 * the lab's own range (198.19.0.0/16, inside namespaces the test made); at most 2 000
 * entries and 30 s. Prints `{"sent": N, "failed": M}`.
 *
 * Usage: _fleet_knock.ts PLAN.json   (PLAN: [{ "source", "host", "ports": [p1, p2, …] }])
 */
import { knockPlan, type PlanEntry } from "./_tcp_knocks.ts";

const plan = JSON.parse(await Deno.readTextFile(Deno.args[0])) as PlanEntry[];
if (plan.length > 2000) throw new Error("at most 2 000 entries");
if (!plan.every((p) => p.host.startsWith("198.19.") && p.source.startsWith("198.19."))) {
  throw new Error("the fleet lab's addresses only");
}
console.log(JSON.stringify(await knockPlan(plan)));
