/**
 * etcd's v3 JSON wire format, pure: keys and values in base64, transactions and their
 * answers, key-values as etcd sends them. The client (etcd.ts) only moves these over HTTP.
 * @module
 */

/** A key and its value as etcd holds them (decoded). */
export interface KeyValue {
  readonly key: string;
  readonly value: string;
  readonly createRevision: string;
  readonly modRevision: string;
  readonly lease?: string;
}

/** One compare of a transaction (the key's value, or its create revision). */
export type Compare =
  | { readonly key: string; readonly target: "CREATE"; readonly createRevision: string }
  | {
    readonly key: string;
    readonly target: "VALUE";
    readonly result: "EQUAL" | "LESS" | "GREATER";
    readonly value: string;
  };

/** One operation of a transaction. */
export type Op =
  | { readonly put: { readonly key: string; readonly value: string; readonly lease?: string } }
  | { readonly range: { readonly key: string } }
  | { readonly txn: Txn };

/** A transaction: if every compare holds, `success` runs, else `failure`. */
export interface Txn {
  readonly compare: readonly Compare[];
  readonly success: readonly Op[];
  readonly failure: readonly Op[];
}

/** What a transaction did: which branch ran, and each op's answer. */
export interface TxnResult {
  readonly succeeded: boolean;
  readonly revision: string;
  /** Per op: a range's key-values, a nested transaction's result, nothing for a put. */
  readonly responses: readonly (KeyValue[] | TxnResult | undefined)[];
}

const encoder = new TextEncoder(), decoder = new TextDecoder();

/** Base64 of a string's UTF-8 bytes. */
export function b64(text: string): string {
  let binary = "";
  for (const byte of encoder.encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function unb64(text: string | undefined): string {
  if (!text) return "";
  return decoder.decode(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)));
}

/**
 * The end of the range holding every key that starts with `prefix` (its last byte plus
 * one), as etcd's clients compute it.
 *
 * @example
 * ```ts
 * import { prefixEnd } from "./etcd_wire.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(prefixEnd("/sesame/"), "/sesame0");
 * ```
 */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

export interface RawKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  lease?: string;
}

export function kv(raw: RawKv): KeyValue {
  return {
    key: unb64(raw.key),
    value: unb64(raw.value),
    createRevision: raw.create_revision ?? "0",
    modRevision: raw.mod_revision ?? "0",
    ...(raw.lease && raw.lease !== "0" ? { lease: raw.lease } : {}),
  };
}

export function wireOp(op: Op): unknown {
  if ("put" in op) {
    return {
      request_put: {
        key: b64(op.put.key),
        value: b64(op.put.value),
        ...(op.put.lease ? { lease: op.put.lease } : {}),
      },
    };
  }
  if ("range" in op) return { request_range: { key: b64(op.range.key) } };
  return { request_txn: wireTxn(op.txn) };
}

export function wireTxn(txn: Txn): unknown {
  return {
    compare: txn.compare.map((c) =>
      c.target === "CREATE"
        ? { key: b64(c.key), target: "CREATE", result: "EQUAL", create_revision: c.createRevision }
        : { key: b64(c.key), target: "VALUE", result: c.result, value: b64(c.value) }
    ),
    success: txn.success.map(wireOp),
    failure: txn.failure.map(wireOp),
  };
}

// deno-lint-ignore no-explicit-any
export function txnResult(raw: any, revision: string): TxnResult {
  return {
    succeeded: raw.succeeded === true,
    revision,
    // deno-lint-ignore no-explicit-any
    responses: (raw.responses ?? []).map((r: any) =>
      r.response_range
        ? (r.response_range.kvs ?? []).map(kv)
        : r.response_txn
        ? txnResult(r.response_txn, revision)
        : undefined
    ),
  };
}
