/**
 * The agent's real webhook deliveries, received by a Node.js server here and checked with
 * verifyWebhook / parseWebhook: the signature scheme of pkg/webhook/webhook.c end to end.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import { rowPatchFromStatus } from "../../src/prisma.js";
import { parseWebhook, verifyWebhook } from "../../src/webhook.js";
import { LocalAgent, waitFor } from "../helpers/agent.js";

const SECRET = "whsec_ts-integration-S3cret";

interface Delivery {
  body: Buffer;
  headers: IncomingHttpHeaders;
}

let la: LocalAgent;
let rx: Server;
const deliveries: Delivery[] = [];

before(async () => {
  rx = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      deliveries.push({ body: Buffer.concat(chunks), headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => rx.listen(0, "127.0.0.1", r));
  la = await LocalAgent.start({
    webhookUrl: `http://127.0.0.1:${(rx.address() as AddressInfo).port}/hooks/dev8`,
    webhookSecret: SECRET,
  });
});

after(async () => {
  rx?.closeAllConnections();
  await new Promise<void>((r) => (rx ? rx.close(() => r()) : r()));
  if (!la) return;
  const { agent, sim, agentLog } = await la.stop();
  assert.equal(agent, 0, `dev8-agent exited ${agent}\n${agentLog}`);
  assert.equal(sim, 0, `azsim exited ${sim}`);
});

const header = (d: Delivery, name: string): string => String(d.headers[name] ?? "");

describe("webhook deliveries of the real agent", { timeout: 60_000 }, () => {
  it("verify with the secret, fail with another secret or a changed body, and decode into a Prisma patch", async () => {
    const c = la.client();
    await c.put("ts-hook-1", { userId: "u-hook", name: "hooked", cloudRegion: "eastus" });
    await waitFor(
      "a delivery showing ts-hook-1 RUNNING",
      () => deliveries.some((d) => d.body.includes('"phase":"RUNNING"') && d.body.includes('"id":"ts-hook-1"')),
      30_000,
    );
    assert.ok(deliveries.length >= 2);
    for (const d of deliveries) {
      const sig = header(d, "x-dev8-signature");
      assert.match(sig, /^sha256=[0-9a-f]{64}$/);
      assert.equal(verifyWebhook(SECRET, d.body, sig), true, "the raw bytes verify");
      assert.equal(verifyWebhook(SECRET, d.body.toString("utf8"), sig), true, "and so does their text");
      assert.equal(verifyWebhook(`${SECRET}x`, d.body, sig), false);
      assert.equal(verifyWebhook(SECRET, Buffer.concat([d.body, Buffer.from(" ")]), sig), false);
      assert.equal(header(d, "content-type"), "application/json");
      assert.match(header(d, "x-dev8-delivery"), /^[0-9a-f-]{36}$/);
    }
    const last = deliveries.filter((d) => d.body.includes('"phase":"RUNNING"')).at(-1) as Delivery;
    const parsed = parseWebhook(SECRET, last.body, last.headers as Record<string, string>);
    assert.equal(parsed.event, "MODIFIED");
    assert.equal(parsed.environment.id, "ts-hook-1");
    assert.equal(parsed.resourceVersion, Number(header(last, "x-dev8-resource-version")));
    const patch = rowPatchFromStatus(parsed.environment);
    assert.equal(patch.status, "RUNNING");
    assert.equal(patch.aciContainerGroupId, "dev8-ts-hook-1");
    assert.ok(patch.vsCodeUrl);

    const rvs = deliveries.filter((d) => d.body.includes('"id":"ts-hook-1"')).map((d) => Number(header(d, "x-dev8-resource-version")));
    assert.deepEqual(rvs, [...rvs].sort((a, b) => a - b), "one environment's deliveries arrive in order");
  });
});
