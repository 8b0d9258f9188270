import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";

import {
  WebhookVerificationError,
  parseWebhook,
  verifyWebhook,
  webhookSignature,
} from "../../src/webhook.js";

// The vectors of test/unit/webhook/test_webhook.c (test_signature_vectors): what the agent's
// webhook_signature() (OpenSSL HMAC with EVP_sha256, "sha256=" + lowercase hex) produces.
const C_VECTORS: Array<{ secret: string | Uint8Array; body: string; sig: string }> = [
  {
    secret: "Jefe",
    body: "what do ya want for nothing?",
    sig: "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  },
  {
    secret: new Uint8Array(20).fill(0x0b),
    body: "Hi There",
    sig: "sha256=b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
  },
  {
    secret: "It's a Secret to Everybody",
    body: "Hello, World!",
    sig: "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
  },
];

const SECRET = "whsec-unit-test";
const BODY = '{"id":"ckx1","generation":1,"spec":null,"status":{"phase":"DELETING"}}';

describe("webhook signatures", () => {
  it("computes exactly the C code's signatures (its own test vectors)", () => {
    for (const v of C_VECTORS) {
      assert.equal(webhookSignature(v.secret, v.body), v.sig);
      assert.equal(verifyWebhook(v.secret, v.body, v.sig), true);
      assert.equal(verifyWebhook(v.secret, Buffer.from(v.body), v.sig), true);
    }
  });

  it("matches openssl's HMAC-SHA256 of the same bytes (the library the agent signs with)", (t) => {
    let out: string;
    try {
      out = execFileSync("openssl", ["dgst", "-sha256", "-hmac", SECRET], { input: BODY }).toString();
    } catch (err) {
      t.skip(`the openssl command is not installed (${String(err)}); the C vectors above still ran`);
      return;
    }
    const hex = out.trim().split(/\s+/).pop();
    assert.equal(webhookSignature(SECRET, BODY), `sha256=${hex}`);
  });

  it("refuses a wrong secret, a changed body, and headers of the wrong form", () => {
    const sig = webhookSignature(SECRET, BODY);
    assert.equal(verifyWebhook(SECRET, BODY, sig), true);
    assert.equal(verifyWebhook(SECRET, BODY, `  ${sig} `), true, "surrounding spaces are trimmed");
    assert.equal(verifyWebhook(SECRET, BODY, sig.toUpperCase().replace("SHA256=", "sha256=")), true, "hex case");
    assert.equal(verifyWebhook("other", BODY, sig), false);
    assert.equal(verifyWebhook(SECRET, `${BODY} `, sig), false);
    assert.equal(verifyWebhook(SECRET, BODY.replace("ckx1", "ckx2"), sig), false);
    const last = sig.at(-1) === "0" ? "1" : "0";
    assert.equal(verifyWebhook(SECRET, BODY, sig.slice(0, -1) + last), false, "one hex digit off");
    for (const bad of [undefined, null, "", "sha256=", sig.slice(7), `sha1=${sig.slice(7)}`, `${sig}00`, sig.slice(0, -2), `sha256=${"zz".repeat(32)}`]) {
      assert.equal(verifyWebhook(SECRET, BODY, bad), false, String(bad));
    }
    assert.equal(verifyWebhook("", BODY, webhookSignature("", BODY)), false, "an empty secret is refused");
  });

  it("signs the exact bytes: UTF-8 text and its bytes verify alike", () => {
    const body = '{"name":"café ☕"}';
    const sig = webhookSignature(SECRET, Buffer.from(body, "utf8"));
    assert.equal(verifyWebhook(SECRET, body, sig), true);
    assert.equal(verifyWebhook(Buffer.from(SECRET), new TextEncoder().encode(body), sig), true);
  });

  it("parseWebhook verifies first, then decodes the headers and the object", () => {
    const headers = {
      "X-Dev8-Signature": webhookSignature(SECRET, BODY),
      "X-Dev8-Event": "MODIFIED",
      "X-Dev8-Delivery": "0b8e7c57-3b53-4c4e-9d3c-7f1d2b1e9a11",
      "X-Dev8-Resource-Version": "1764000000000001",
    };
    const d = parseWebhook(SECRET, BODY, headers);
    assert.equal(d.event, "MODIFIED");
    assert.equal(d.deliveryId, headers["X-Dev8-Delivery"]);
    assert.equal(d.resourceVersion, 1764000000000001);
    assert.equal(d.environment.id, "ckx1");
    assert.deepEqual(parseWebhook(SECRET, BODY, new Headers(headers)), d);

    assert.throws(
      () => parseWebhook(SECRET, BODY, { ...headers, "X-Dev8-Signature": webhookSignature("x", BODY) }),
      (e: unknown) => e instanceof WebhookVerificationError && e.badSignature,
    );
    assert.throws(
      () => parseWebhook(SECRET, BODY, { ...headers, "X-Dev8-Event": "EXPLODED" }),
      (e: unknown) => e instanceof WebhookVerificationError && !e.badSignature,
    );
    assert.throws(
      () => parseWebhook(SECRET, BODY, { ...headers, "X-Dev8-Resource-Version": "-1" }),
      WebhookVerificationError,
    );
    const notJson = "not json";
    assert.throws(
      () => parseWebhook(SECRET, notJson, { ...headers, "X-Dev8-Signature": webhookSignature(SECRET, notJson) }),
      /not JSON/,
    );
  });
});
