/// <reference lib="deno.worker" />
/**
 * The worker behind {@link WorkerRunner}: spawns commands so the main thread never blocks.
 * @module
 */
import { runCommand } from "./runner.ts";

self.onmessage = async (
  event: MessageEvent<
    { id: number; argv: string[]; timeoutMs: number; input?: string; capture?: boolean }
  >,
) => {
  const { id, argv, timeoutMs, input, capture } = event.data;
  self.postMessage({ id, result: await runCommand(argv, timeoutMs, input, capture) });
};
