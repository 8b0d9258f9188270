import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";

import { Dev8Client, WatchProtocolError, type WatchEvent } from "../../src/client.js";
import { Dev8ApiError } from "../../src/errors.js";
import { FakeAgent, sendJson, sseEvent, sseHead } from "../helpers/fake-agent.js";
import { sampleEnvironment } from "../helpers/fixtures.js";

const a = sampleEnvironment({}, "a1");
const b = sampleEnvironment({}, "b1");
let agent: FakeAgent | undefined;

afterEach(async () => {
  await agent?.stop();
  agent = undefined;
});

function clientOf(fa: FakeAgent): Dev8Client {
  return new Dev8Client({ baseUrl: fa.baseUrl, apiKey: "k1" });
}

/** Collects n events of a watch (then stops it), with a deadline. */
async function take(
  c: Dev8Client,
  n: number,
  opts: Parameters<Dev8Client["watch"]>[0] = {},
  timeoutMs = 5000,
): Promise<{ events: WatchEvent[]; reconnects: unknown[] }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error("test deadline")), timeoutMs);
  const events: WatchEvent[] = [];
  const reconnects: unknown[] = [];
  for await (const ev of c.watch({
    minBackoffMs: 10,
    maxBackoffMs: 50,
    ...opts,
    signal: ac.signal,
    onReconnect: (i) => reconnects.push(i.reason),
  })) {
    events.push(ev);
    if (events.length === n) break;
  }
  clearTimeout(timer);
  assert.equal(events.length, n, `expected ${n} events before the deadline, got ${JSON.stringify(events.map((e) => e.type))}`);
  return { events, reconnects };
}

const brief = (evs: WatchEvent[]) =>
  evs.map((e) => (e.type === "RESYNC" ? `RESYNC@${e.resourceVersion}:${e.items.map((i) => i.id).join(",")}` : `${e.type}@${e.resourceVersion}:${e.object.id}`));

describe("watch", () => {
  it("sends the key and resourceVersion, parses events, and resumes with Last-Event-ID after a drop", async () => {
    agent = await new FakeAgent((req, res, n) => {
      sseHead(res);
      if (n === 1) {
        sseEvent(res, 11, "ADDED", a);
        res.write(": heartbeat\n\n");
        sseEvent(res, 12, "MODIFIED", a);
        setTimeout(() => res.socket?.destroy(), 20); // the connection drops
      } else {
        sseEvent(res, 13, "DELETED", a);
      }
    }).start();
    const { events, reconnects } = await take(clientOf(agent), 3, { resourceVersion: 10 });
    assert.deepEqual(brief(events), ["ADDED@11:a1", "MODIFIED@12:a1", "DELETED@13:a1"]);
    const [w1, w2] = agent.watches();
    assert.equal(w1?.url.search, "?resourceVersion=10");
    assert.equal(w1?.headers["last-event-id"], undefined);
    assert.equal(w1?.headers.authorization, "Bearer k1");
    assert.equal(w1?.headers.accept, "text/event-stream");
    assert.equal(w2?.url.search, "", "a resumption names its position in Last-Event-ID only");
    assert.equal(w2?.headers["last-event-id"], "12");
    assert.equal(reconnects.length, 1);
  });

  it("on 410 Gone lists every page again, yields RESYNC, then watches from the first page's resourceVersion", async () => {
    agent = await new FakeAgent((req, res) => {
      if (req.url.pathname === "/api/v1/environments") {
        const cont = req.url.searchParams.get("continue");
        if (!cont) return sendJson(res, 200, { items: [a], resourceVersion: 500, continue: "a1" });
        return sendJson(res, 200, { items: [b], resourceVersion: 502, continue: "" });
      }
      if (req.url.searchParams.get("resourceVersion") === "3") {
        return sendJson(res, 410, { error: { code: "Gone", message: "too old", field: "resourceVersion" } });
      }
      sseHead(res);
      sseEvent(res, 501, "MODIFIED", b);
    }).start();
    const { events } = await take(clientOf(agent), 2, { resourceVersion: 3 });
    assert.deepEqual(brief(events), ["RESYNC@500:a1,b1", "MODIFIED@501:b1"]);
    assert.equal(agent.watches()[1]?.url.search, "?resourceVersion=500");
  });

  it("a 410 on a Last-Event-ID resumption re-lists too", async () => {
    agent = await new FakeAgent((req, res, n) => {
      if (req.url.pathname === "/api/v1/environments") return sendJson(res, 200, { items: [a, b], resourceVersion: 900, continue: "" });
      if (req.headers["last-event-id"] === "21") return sendJson(res, 410, { error: { code: "Gone", message: "too old" } });
      sseHead(res);
      if (n === 1) {
        sseEvent(res, 21, "MODIFIED", a);
        setTimeout(() => res.end(), 20); // a clean end of the stream is a drop too
      } else {
        sseEvent(res, 901, "DELETED", b);
      }
    }).start();
    const { events } = await take(clientOf(agent), 3, { resourceVersion: 20 });
    assert.deepEqual(brief(events), ["MODIFIED@21:a1", "RESYNC@900:a1,b1", "DELETED@901:b1"]);
  });

  it("an ERROR event (the agent cut a watcher that fell behind) re-lists, as a 410 does", async () => {
    agent = await new FakeAgent((req, res, n) => {
      if (req.url.pathname === "/api/v1/environments") return sendJson(res, 200, { items: [a, b], resourceVersion: 70, continue: "" });
      sseHead(res);
      if (n === 1) {
        sseEvent(res, 61, "MODIFIED", a);
        res.write('event: ERROR\ndata: {"error":{"code":"Gone","message":"behind: list again"}}\n\n');
        res.end();
      } else {
        sseEvent(res, 71, "DELETED", b);
      }
    }).start();
    const { events } = await take(clientOf(agent), 3, { resourceVersion: 60 });
    assert.deepEqual(brief(events), ["MODIFIED@61:a1", "RESYNC@70:a1,b1", "DELETED@71:b1"]);
    const w2 = agent.watches()[1];
    assert.equal(w2?.url.search, "?resourceVersion=70");
    assert.equal(w2?.headers["last-event-id"], undefined);
  });

  it("a drop during the initial snapshot re-lists instead of resuming from the snapshot's shared id", async () => {
    agent = await new FakeAgent((req, res, n) => {
      if (req.url.pathname === "/api/v1/environments") return sendJson(res, 200, { items: [a, b], resourceVersion: 40, continue: "" });
      sseHead(res);
      if (n === 1) {
        sseEvent(res, 40, "ADDED", a); // b's ADDED never arrives
        setTimeout(() => res.socket?.destroy(), 20);
      } else {
        sseEvent(res, 41, "MODIFIED", b);
      }
    }).start();
    const { events } = await take(clientOf(agent), 3);
    assert.deepEqual(brief(events), ["ADDED@40:a1", "RESYNC@40:a1,b1", "MODIFIED@41:b1"]);
    const [w1, w2] = agent.watches();
    assert.equal(w1?.url.search, "", "no resourceVersion: the agent's snapshot");
    assert.equal(w2?.url.search, "?resourceVersion=40");
    assert.equal(w2?.headers["last-event-id"], undefined);
  });

  it("after the snapshot is known complete (a later id), a drop resumes with Last-Event-ID", async () => {
    agent = await new FakeAgent((req, res, n) => {
      sseHead(res);
      if (n === 1) {
        sseEvent(res, 40, "ADDED", a);
        sseEvent(res, 40, "ADDED", b);
        sseEvent(res, 41, "MODIFIED", a);
        setTimeout(() => res.socket?.destroy(), 20);
      } else {
        sseEvent(res, 42, "MODIFIED", b);
      }
    }).start();
    const { events } = await take(clientOf(agent), 4);
    assert.deepEqual(brief(events), ["ADDED@40:a1", "ADDED@40:b1", "MODIFIED@41:a1", "MODIFIED@42:b1"]);
    assert.equal(agent.watches()[1]?.headers["last-event-id"], "41");
  });

  it("retries 503 and 429 after their Retry-After", async () => {
    agent = await new FakeAgent((req, res, n) => {
      if (n === 1) return sendJson(res, 503, { error: { code: "NotReady", message: "starting" } }, { "Retry-After": "0" });
      if (n === 2) return sendJson(res, 429, { error: { code: "TooManyRequests", message: "later" } }, { "Retry-After": "0" });
      sseHead(res);
      sseEvent(res, 5, "ADDED", a);
    }).start();
    const { events, reconnects } = await take(clientOf(agent), 1, { resourceVersion: 4 });
    assert.deepEqual(brief(events), ["ADDED@5:a1"]);
    assert.deepEqual(
      reconnects.map((r) => (r instanceof Dev8ApiError ? r.status : r)),
      [503, 429],
    );
  });

  it("retries a refused connection with backoff until the agent listens again", async () => {
    const probe = await new FakeAgent(() => undefined).start();
    const port = Number(new URL(probe.baseUrl).port);
    await probe.stop();
    const c = new Dev8Client({ baseUrl: `http://127.0.0.1:${port}`, apiKey: "k1" });
    const later = new FakeAgent((_req, res) => {
      sseHead(res);
      sseEvent(res, 3, "ADDED", a);
    });
    // The same port again after a while, as an agent restarted by its Deployment would be.
    setTimeout(() => void later.start(port), 150);
    agent = later;
    const { events, reconnects } = await take(c, 1, { resourceVersion: 2 });
    assert.deepEqual(brief(events), ["ADDED@3:a1"]);
    assert.ok(reconnects.length >= 2, `several attempts with backoff (${reconnects.length})`);
    assert.ok(reconnects.every((r) => r instanceof TypeError), "fetch's own connection errors");
  });

  it("throws what retrying cannot fix: 401 and 400", async () => {
    for (const [status, code] of [
      [401, "Unauthorized"],
      [400, "InvalidQuery"],
    ] as const) {
      const fa = await new FakeAgent((_req, res) => sendJson(res, status, { error: { code, message: "no" } })).start();
      await assert.rejects(
        (async () => {
          for await (const _ of clientOf(fa).watch()) {
            // no event comes
          }
        })(),
        (e: unknown) => e instanceof Dev8ApiError && e.status === status && e.code === code,
      );
      await fa.stop();
    }
  });

  it("drops a connection that stays silent past idleTimeoutMs and resumes", async () => {
    agent = await new FakeAgent((req, res, n) => {
      sseHead(res);
      if (n === 1) sseEvent(res, 7, "ADDED", a); // then silence, no heartbeat
      else sseEvent(res, 8, "MODIFIED", a);
    }).start();
    const { events, reconnects } = await take(clientOf(agent), 2, { resourceVersion: 6, idleTimeoutMs: 200 });
    assert.deepEqual(brief(events), ["ADDED@7:a1", "MODIFIED@8:a1"]);
    assert.match(String((reconnects[0] as Error).message), /no byte from the watch stream for 200 ms/);
    assert.equal(agent.watches()[1]?.headers["last-event-id"], "7");
  });

  it("heartbeats keep a quiet stream alive", async () => {
    agent = await new FakeAgent((req, res) => {
      sseHead(res);
      const t = setInterval(() => res.write(": heartbeat\n\n"), 50);
      setTimeout(() => {
        clearInterval(t);
        sseEvent(res, 9, "MODIFIED", a);
      }, 400);
      res.on("close", () => clearInterval(t));
    }).start();
    const { events, reconnects } = await take(clientOf(agent), 1, { resourceVersion: 8, idleTimeoutMs: 200 });
    assert.deepEqual(brief(events), ["MODIFIED@9:a1"]);
    assert.equal(reconnects.length, 0);
  });

  it("the signal ends the watch quietly, also while waiting for events", async () => {
    agent = await new FakeAgent((_req, res) => sseHead(res)).start();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const got: WatchEvent[] = [];
    for await (const ev of clientOf(agent).watch({ resourceVersion: 1, signal: ac.signal })) got.push(ev);
    assert.deepEqual(got, []);
  });

  it("skips event types it does not know (keeping their id) and throws on data that is not JSON", async () => {
    agent = await new FakeAgent((req, res, n) => {
      sseHead(res);
      if (n === 1) {
        res.write('id: 2\nevent: BOOKMARK\ndata: {}\n\n');
        sseEvent(res, 3, "ADDED", a);
        res.write("id: 4\nevent: MODIFIED\ndata: {not json\n\n");
      }
    }).start();
    const got: WatchEvent[] = [];
    await assert.rejects(
      (async () => {
        for await (const ev of clientOf(agent!).watch({ resourceVersion: 1 })) got.push(ev);
      })(),
      WatchProtocolError,
    );
    assert.deepEqual(brief(got), ["ADDED@3:a1"]);
  });
});
