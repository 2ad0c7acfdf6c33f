/// <reference lib="deno.worker" />
/**
 * The worker behind {@link WorkerRunner}: spawns commands so the main thread never blocks.
 * @module
 */
import { runCommand, type RunOptions } from "./runner.ts";

self.onmessage = async (
  event: MessageEvent<{ id: number; argv: string[]; options: RunOptions }>,
) => {
  const { id, argv, options } = event.data;
  self.postMessage({ id, result: await runCommand(argv, options) });
};
