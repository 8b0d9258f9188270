/**
 * Verification of the agent's webhook deliveries (pkg/webhook/webhook.c).
 *
 * The agent POSTs the Environment object as the body with
 *   X-Dev8-Signature: sha256=<64 lowercase hex of HMAC-SHA256(secret, body)>
 * where the secret is the bytes of the environment variable named by webhook.secretEnv (used
 * as is, not trimmed) and the body the exact bytes sent. The scheme signs no timestamp, so
 * there is no staleness to check: a replayed delivery carries a valid signature. What guards
 * against replays is in the other headers: X-Dev8-Delivery (a UUID, the same on every retry
 * of one body: deduplicate on it) and X-Dev8-Resource-Version (grows with every change: never
 * store a state older than the one stored).
 */
import { createHmac, timingSafeEqual } from "node:crypto";

import type { Environment, WatchEventType } from "./types.js";

/** The header names, lower case as Node and the Fetch API's Headers give them. */
export const WEBHOOK_HEADERS = {
  signature: "x-dev8-signature",
  event: "x-dev8-event",
  delivery: "x-dev8-delivery",
  resourceVersion: "x-dev8-resource-version",
} as const;

const PREFIX = "sha256=";
const HEX64 = /^[0-9a-fA-F]{64}$/;

function bytes(v: string | Uint8Array): Buffer {
  return typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** The X-Dev8-Signature value the agent sends for this body. */
export function webhookSignature(secret: string | Uint8Array, body: string | Uint8Array): string {
  return PREFIX + createHmac("sha256", bytes(secret)).update(bytes(body)).digest("hex");
}

/**
 * Whether signatureHeader is the agent's signature of body under secret. Pass the raw body
 * bytes as received (in a Next.js route handler: `Buffer.from(await req.arrayBuffer())`), not
 * a re-serialised JSON. The comparison of the digests runs in constant time
 * (crypto.timingSafeEqual over the 32 bytes); a header of the wrong form is refused before any
 * comparison, which tells an attacker nothing about the secret. An empty secret is refused:
 * the agent never signs with one.
 */
export function verifyWebhook(
  secret: string | Uint8Array,
  body: string | Uint8Array,
  signatureHeader: string | null | undefined,
): boolean {
  if (bytes(secret).length === 0) return false;
  if (typeof signatureHeader !== "string") return false;
  const h = signatureHeader.trim();
  if (h.length !== PREFIX.length + 64 || h.slice(0, PREFIX.length).toLowerCase() !== PREFIX) return false;
  const hex = h.slice(PREFIX.length);
  if (!HEX64.test(hex)) return false;
  const got = Buffer.from(hex, "hex");
  const want = createHmac("sha256", bytes(secret)).update(bytes(body)).digest();
  return got.length === want.length && timingSafeEqual(got, want);
}

/** A verified delivery. */
export interface WebhookDelivery {
  event: WatchEventType;
  /** X-Dev8-Delivery: the same UUID on every retry of one body. */
  deliveryId: string;
  /** X-Dev8-Resource-Version. */
  resourceVersion: number;
  environment: Environment;
}

/** Thrown by parseWebhook; answer 401 for a bad signature, 400 otherwise. */
export class WebhookVerificationError extends Error {
  override readonly name = "WebhookVerificationError";
  constructor(
    message: string,
    readonly badSignature: boolean,
  ) {
    super(message);
  }
}

type HeaderSource = Headers | Record<string, string | string[] | undefined>;

function header(h: HeaderSource, name: string): string | undefined {
  if (typeof (h as Headers).get === "function") return (h as Headers).get(name) ?? undefined;
  const rec = h as Record<string, string | string[] | undefined>;
  for (const k of Object.keys(rec)) {
    if (k.toLowerCase() === name) {
      const v = rec[k];
      return Array.isArray(v) ? v[0] : v;
    }
  }
  return undefined;
}

/**
 * Verifies a delivery and decodes it: the signature first (nothing of an unsigned body is
 * parsed), then the event, delivery and resourceVersion headers and the JSON body.
 */
export function parseWebhook(
  secret: string | Uint8Array,
  body: string | Uint8Array,
  headers: HeaderSource,
): WebhookDelivery {
  if (!verifyWebhook(secret, body, header(headers, WEBHOOK_HEADERS.signature))) {
    throw new WebhookVerificationError("the X-Dev8-Signature does not match the body", true);
  }
  const event = header(headers, WEBHOOK_HEADERS.event);
  if (event !== "ADDED" && event !== "MODIFIED" && event !== "DELETED") {
    throw new WebhookVerificationError(`unknown X-Dev8-Event ${JSON.stringify(event)}`, false);
  }
  const deliveryId = header(headers, WEBHOOK_HEADERS.delivery) ?? "";
  const rv = header(headers, WEBHOOK_HEADERS.resourceVersion) ?? "";
  if (!/^\d+$/.test(rv)) {
    throw new WebhookVerificationError(`bad X-Dev8-Resource-Version ${JSON.stringify(rv)}`, false);
  }
  let environment: Environment;
  try {
    environment = JSON.parse(typeof body === "string" ? body : bytes(body).toString("utf8")) as Environment;
  } catch {
    throw new WebhookVerificationError("the body is not JSON", false);
  }
  return { event, deliveryId, resourceVersion: Number(rv), environment };
}
