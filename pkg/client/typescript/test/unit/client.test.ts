import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Dev8Client, isValidEnvironmentId } from "../../src/client.js";
import { Dev8ApiError, parseRetryAfter } from "../../src/errors.js";
import { sampleEnvironment } from "../helpers/fixtures.js";
import { apiError, fakeFetch, json } from "../helpers/fake-fetch.js";

const BASE = "http://agent.test:8080";
const env = sampleEnvironment();
const spec = { userId: "u1", name: "my env", cloudRegion: "eastus" };

function client(responder: Parameters<typeof fakeFetch>[0], extra: Partial<ConstructorParameters<typeof Dev8Client>[0]> = {}) {
  const f = fakeFetch(responder);
  return { c: new Dev8Client({ baseUrl: `${BASE}/`, apiKey: "k1", fetch: f.fetch, ...extra }), calls: f.calls };
}

describe("Dev8Client routes", () => {
  it("sends every route with its method, path, key, request id and JSON body", async () => {
    const { c, calls } = client((req) => {
      const p = req.url.pathname;
      if (p.endsWith("/activity")) return new Response(null, { status: 204 });
      if (p === "/api/v1/environments" && req.method === "PUT")
        return json(200, { created: 1, updated: 0, unchanged: 0, removed: 2, resourceVersion: 9 });
      if (p === "/api/v1/environments" && req.method === "GET")
        return json(200, { items: [env], resourceVersion: 9, continue: "" });
      if (p === "/api/v1/orphans") return json(200, { items: [] });
      if (p.endsWith("/events")) return json(200, { environmentId: "ckx1", items: [] });
      if (p === "/api/v1/reaper/resume") return json(200, { resumed: false });
      if (p === "/api/v1/status") return json(200, { version: "x", synced: true });
      if (req.method === "PUT") return json(201, env, { ETag: '"3"' });
      if (req.method === "POST" && p === "/api/v1/environments") return json(201, env);
      return json(req.method === "GET" ? 200 : 202, env);
    });
    const put = await c.put("ckx1", spec);
    assert.deepEqual([put.created, put.etag, put.environment.id], [true, '"3"', "ckx1"]);
    assert.equal((await c.create({ ...spec, id: "ckx1" })).id, "ckx1");
    assert.equal((await c.get("ckx1")).generation, 3);
    assert.equal((await c.list()).items.length, 1);
    assert.equal((await c.delete("ckx1")).id, "ckx1");
    await c.start("ckx1");
    await c.stop("ckx1");
    await c.restart("ckx1");
    assert.equal(await c.activity("ckx1"), undefined);
    assert.equal((await c.fullSync([{ ...spec, id: "ckx1" }])).removed, 2);
    assert.deepEqual(await c.events("ckx1"), { environmentId: "ckx1", items: [] });
    assert.deepEqual(await c.orphans(), { items: [] });
    assert.deepEqual(await c.resumeReaper(), { resumed: false });
    assert.equal((await c.status()).synced, true);

    assert.deepEqual(
      calls.map((r) => `${r.method} ${r.url.pathname}`),
      [
        "PUT /api/v1/environments/ckx1",
        "POST /api/v1/environments",
        "GET /api/v1/environments/ckx1",
        "GET /api/v1/environments",
        "DELETE /api/v1/environments/ckx1",
        "POST /api/v1/environments/ckx1/start",
        "POST /api/v1/environments/ckx1/stop",
        "POST /api/v1/environments/ckx1/restart",
        "POST /api/v1/environments/ckx1/activity",
        "PUT /api/v1/environments",
        "GET /api/v1/environments/ckx1/events",
        "GET /api/v1/orphans",
        "POST /api/v1/reaper/resume",
        "GET /api/v1/status",
      ],
    );
    for (const r of calls) {
      assert.equal(r.headers.get("authorization"), "Bearer k1");
      assert.match(r.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
      assert.equal(r.headers.get("content-type"), r.body === undefined ? null : "application/json");
      assert.equal(r.headers.get("if-match"), null);
    }
    assert.deepEqual(JSON.parse(calls[0]?.body ?? ""), spec);
    assert.deepEqual(JSON.parse(calls[9]?.body ?? ""), { items: [{ ...spec, id: "ckx1" }] });
    assert.equal(calls[5]?.body, undefined, "start has no body");
  });

  it("sends If-Match as a quoted generation or *, and reports 200 as not created", async () => {
    const { c, calls } = client(() => json(200, env, { ETag: '"3"' }));
    const r = await c.put("ckx1", spec, { ifMatch: 3 });
    assert.equal(r.created, false);
    await c.put("ckx1", spec, { ifMatch: "*" });
    await c.put("ckx1", spec, { ifMatch: 0 });
    assert.deepEqual(
      calls.map((x) => x.headers.get("if-match")),
      ['"3"', "*", '"0"'],
    );
  });

  it("leaves out null fields: a null powerState or secretEnv means 'kept' with every agent", async () => {
    const { c, calls } = client((req) =>
      req.method === "PUT" && req.url.pathname === "/api/v1/environments"
        ? json(200, { created: 0, updated: 0, unchanged: 1, removed: 0, resourceVersion: 1 })
        : json(200, env),
    );
    const nully = { ...spec, powerState: null, secretEnv: null, baseImage: null, cpuCores: 1 };
    await c.put("ckx1", nully);
    await c.create({ ...nully, id: "ckx1" });
    await c.fullSync([{ ...nully, id: "ckx1" }]);
    assert.deepEqual(JSON.parse(calls[0]?.body ?? ""), { ...spec, cpuCores: 1 });
    assert.deepEqual(JSON.parse(calls[1]?.body ?? ""), { ...spec, cpuCores: 1, id: "ckx1" });
    assert.deepEqual(JSON.parse(calls[2]?.body ?? ""), { items: [{ ...spec, cpuCores: 1, id: "ckx1" }] });
    assert.deepEqual(JSON.parse(JSON.stringify({ ...spec, env: {} })), { ...spec, env: {} }, "{} is kept: it clears");
  });

  it("encodes list filters, leaves out empty ones, and follows continue over pages", async () => {
    const pages: Record<string, unknown> = {
      "": { items: [sampleEnvironment({}, "a1")], resourceVersion: 100, continue: "a1" },
      a1: { items: [sampleEnvironment({}, "b1")], resourceVersion: 104, continue: "b1" },
      b1: { items: [sampleEnvironment({}, "c1")], resourceVersion: 107, continue: "" },
    };
    const { c, calls } = client((req) => json(200, pages[req.url.searchParams.get("continue") ?? ""]));
    await c.list({ userId: "user a&b=c", cloudRegion: "eastus", phase: "RUNNING", limit: 2, continue: "" });
    assert.equal(
      calls[0]?.url.search,
      "?userId=user+a%26b%3Dc&cloudRegion=eastus&phase=RUNNING&limit=2",
    );
    const seen: string[] = [];
    for await (const page of c.listPages({ limit: 1 })) seen.push(...page.items.map((e) => e.id));
    assert.deepEqual(seen, ["a1", "b1", "c1"]);
    const all = await c.listAll({ userId: "u" });
    assert.deepEqual(all.items.map((e) => e.id), ["a1", "b1", "c1"]);
    assert.equal(all.resourceVersion, 100, "the first page's resourceVersion: a watch from it misses nothing");
    assert.equal(calls.at(-3)?.url.searchParams.get("limit"), "1000");
    assert.equal(calls.at(-3)?.url.searchParams.get("userId"), "u");
  });

  it("sends the usage and retained routes with their query", async () => {
    const row = {
      environmentId: "ckx1", userId: "u1", periodStart: "2026-12-01T00:00:00Z",
      periodEnd: "2026-12-02T00:00:00Z", runningSeconds: 60, cpuCoreSeconds: 120,
      memoryGBSeconds: 240, storageGBHours: 20, estimatedCost: 0.01, currency: "USD",
    };
    const kept = {
      environmentId: "ckx2", userId: "u1", region: "eastus", share: "dev8-ckx2", sizeGB: 20,
      keepUntil: "2027-01-01T00:00:00Z",
    };
    const { c, calls } = client((req) =>
      json(200, { items: [req.url.pathname === "/api/v1/usage" ? row : kept] }),
    );
    const u = await c.usage({ from: "2026-12-01T00:00:00Z", userId: "u1", granularity: "day" });
    assert.equal(u.items[0]?.cpuCoreSeconds, 120);
    assert.equal((await c.retained()).items[0]?.share, "dev8-ckx2");
    assert.deepEqual(
      calls.map((r) => `${r.method} ${r.url.pathname}${r.url.search}`),
      [
        "GET /api/v1/usage?from=2026-12-01T00%3A00%3A00Z&userId=u1&granularity=day",
        "GET /api/v1/retained",
      ],
    );
  });

  it("escapes ids in paths and validates them like the agent", async () => {
    const { c, calls } = client(() => apiError(400, "InvalidId", "bad id", "id"));
    await assert.rejects(c.get("a/b"), Dev8ApiError);
    assert.equal(calls[0]?.url.pathname, "/api/v1/environments/a%2Fb");
    assert.equal(isValidEnvironmentId("ckx1"), true);
    assert.equal(isValidEnvironmentId("clq2x8y9z0000abcd1234efgh"), true, "a Prisma cuid");
    for (const bad of ["", "-a", "a-", "a--b", "A", "a_b", "a".repeat(49)]) assert.equal(isValidEnvironmentId(bad), false, bad);
    assert.equal(isValidEnvironmentId("a".repeat(48)), true);
  });

  it("uses the caller's request id and extra headers, never letting them replace the key", async () => {
    const { c, calls } = client(() => json(200, env), {
      headers: { "User-Agent": "dev8-web/1", Authorization: "Bearer nope" },
      requestId: () => "gen-1",
    });
    await c.get("ckx1");
    await c.get("ckx1", { requestId: "mine-2" });
    assert.equal(calls[0]?.headers.get("user-agent"), "dev8-web/1");
    assert.equal(calls[0]?.headers.get("authorization"), "Bearer k1");
    assert.deepEqual(calls.map((r) => r.headers.get("x-request-id")), ["gen-1", "mine-2"]);
  });
});

describe("Dev8ApiError", () => {
  it("carries status, code, message, field and the answer's request id", async () => {
    const { c } = client(() =>
      apiError(400, "InvalidSpec", "cpuCores must be a multiple of 0.5 from 0.5 to 4 (got 3.3)", "cpuCores", {
        "X-Request-Id": "req-42",
      }),
    );
    const err = await c.put("ckx1", { ...spec, cpuCores: 3.3 }).catch((e: unknown) => e);
    assert.ok(err instanceof Dev8ApiError);
    assert.ok(err instanceof Error);
    assert.deepEqual(
      [err.status, err.code, err.field, err.requestId, err.retryAfterMs, err.method, err.path, err.retryable],
      [400, "InvalidSpec", "cpuCores", "req-42", undefined, "PUT", "/api/v1/environments/ckx1", false],
    );
    assert.match(err.message, /multiple of 0\.5/);
    assert.match(String(err), /^Dev8ApiError: PUT \/api\/v1\/environments\/ckx1: 400 InvalidSpec: .* \(field cpuCores\)$/);
  });

  it("exposes a 409's Retry-After as retryAfterMs (the reaper is deleting this id)", async () => {
    const { c } = client(() => apiError(409, "Conflict", "an orphaned resource of ckx1 is being deleted", undefined, { "Retry-After": "5" }));
    const err = (await c.put("ckx1", spec).catch((e: unknown) => e)) as Dev8ApiError;
    assert.deepEqual([err.status, err.isConflict, err.retryAfterMs, err.retryable, err.field], [409, true, 5000, true, undefined]);
  });

  it("a stale If-Match is a 409 without Retry-After: not retryable as is", async () => {
    const { c } = client(() => apiError(409, "Conflict", "If-Match does not match the current generation 4"));
    const err = (await c.put("ckx1", spec, { ifMatch: 3 }).catch((e: unknown) => e)) as Dev8ApiError;
    assert.deepEqual([err.isConflict, err.retryable, err.retryAfterMs], [true, false, undefined]);
  });

  it("404 is isNotFound; 429 and 5xx are retryable", async () => {
    const answers = [apiError(404, "NotFound", "no environment with this id"), apiError(429, "TooManyRequests", "x", undefined, { "Retry-After": "2" }), apiError(503, "NotReady", "starting")];
    const { c } = client(() => answers.shift() as Response);
    const e404 = (await c.get("x").catch((e: unknown) => e)) as Dev8ApiError;
    const e429 = (await c.get("x").catch((e: unknown) => e)) as Dev8ApiError;
    const e503 = (await c.get("x").catch((e: unknown) => e)) as Dev8ApiError;
    assert.deepEqual([e404.isNotFound, e404.retryable], [true, false]);
    assert.deepEqual([e429.retryable, e429.retryAfterMs], [true, 2000]);
    assert.deepEqual([e503.retryable, e503.code], [true, "NotReady"]);
  });

  it("a body that is not the agent's error becomes UnexpectedResponse with a snippet", async () => {
    const { c } = client(() => new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" }));
    const err = (await c.status().catch((e: unknown) => e)) as Dev8ApiError;
    assert.deepEqual([err.status, err.code], [502, "UnexpectedResponse"]);
    assert.match(err.message, /502 Bad Gateway .*bad gateway/);
  });

  it("a 2xx that is not JSON is an error too", async () => {
    const { c } = client(() => new Response("ok", { status: 200 }));
    await assert.rejects(c.status(), (e: unknown) => e instanceof Dev8ApiError && e.code === "UnexpectedResponse");
  });

  it("parseRetryAfter reads seconds and HTTP dates", () => {
    const now = Date.parse("2026-11-27T12:00:00Z");
    assert.equal(parseRetryAfter("0", now), 0);
    assert.equal(parseRetryAfter(" 12 ", now), 12000);
    assert.equal(parseRetryAfter("Fri, 27 Nov 2026 12:00:30 GMT", now), 30000);
    assert.equal(parseRetryAfter("Fri, 27 Nov 2026 11:00:00 GMT", now), 0);
    assert.equal(parseRetryAfter("soon", now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
  });

  it("times a request out after timeoutMs, and a caller's signal aborts it", async () => {
    const hang = (_req: unknown, signal: AbortSignal | undefined) =>
      new Promise<Response>((_resolve, reject) => signal?.addEventListener("abort", () => reject(signal.reason)));
    const { c } = client(hang, { timeoutMs: 50 });
    // AbortSignal.timeout's timer does not keep the process alive; this one does meanwhile.
    const keepAlive = setTimeout(() => undefined, 10_000);
    await assert.rejects(c.status(), (e: unknown) => (e as Error).name === "TimeoutError");
    clearTimeout(keepAlive);
    const ac = new AbortController();
    const { c: c2 } = client(hang, { timeoutMs: 0 });
    const p = c2.status({ signal: ac.signal });
    ac.abort();
    await assert.rejects(p, (e: unknown) => (e as Error).name === "AbortError");
  });
});
