import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { SseParser, type SseEvent } from "../../src/sse.js";

function parse(chunks: string[]): { events: SseEvent[]; comments: string[]; retries: number[]; parser: SseParser } {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const parser = new SseParser({
    onEvent: (e) => events.push(e),
    onComment: (c) => comments.push(c),
    onRetry: (ms) => retries.push(ms),
  });
  for (const c of chunks) parser.push(c);
  return { events, comments, retries, parser };
}

/** Every way of cutting s in two, and one chunk per character. */
function splits(s: string): string[][] {
  const out: string[][] = [[s], s.split("")];
  for (let i = 1; i < s.length; i++) out.push([s.slice(0, i), s.slice(i)]);
  return out;
}

describe("SseParser", () => {
  const agentStream =
    'id: 7\nevent: ADDED\ndata: {"id":"a"}\n\n' +
    ": heartbeat\n\n" +
    'id: 8\nevent: MODIFIED\ndata: {"id":"a","generation":2}\n\n';

  it("parses the agent's events (id, event, data) and heartbeat comments", () => {
    const { events, comments, parser } = parse([agentStream]);
    assert.deepEqual(events, [
      { id: "7", event: "ADDED", data: '{"id":"a"}' },
      { id: "8", event: "MODIFIED", data: '{"id":"a","generation":2}' },
    ]);
    assert.deepEqual(comments, ["heartbeat"]);
    assert.equal(parser.lastEventId, "8");
  });

  it("gives the same events however the stream is cut into chunks", () => {
    const want = parse([agentStream]).events;
    for (const chunks of splits(agentStream)) {
      assert.deepEqual(parse(chunks).events, want, JSON.stringify(chunks));
    }
  });

  it("takes CRLF and CR line ends, also split between chunks", () => {
    const crlf = agentStream.replace(/\n/g, "\r\n");
    const cr = agentStream.replace(/\n/g, "\r");
    const want = parse([agentStream]).events;
    for (const s of [crlf, cr]) {
      for (const chunks of splits(s)) assert.deepEqual(parse(chunks).events, want, JSON.stringify(chunks));
    }
  });

  it("joins multi-line data with \\n and removes only one leading space", () => {
    const { events } = parse(["data:  two spaces\ndata:x\ndata\n\n"]);
    assert.deepEqual(events, [{ id: "", event: "message", data: " two spaces\nx\n" }]);
  });

  it("keeps the last id for later events, ignores ids with NUL, unknown fields and empty events", () => {
    const { events, parser } = parse(["id: 3\ndata: a\n\n", "data: b\n\n", "id: 4\n\n", "id: x\0y\nfoo: bar\ndata: c\n\n"]);
    assert.deepEqual(
      events.map((e) => [e.id, e.data]),
      [
        ["3", "a"],
        ["3", "b"],
        ["4", "c"],
      ],
    );
    assert.equal(parser.lastEventId, "4");
  });

  it("reports retry: with digits only", () => {
    const { retries } = parse(["retry: 1500\n\nretry: 1.5\n\nretry: x\n\n"]);
    assert.deepEqual(retries, [1500]);
  });

  it("drops a byte order mark at the start and an unterminated event at the end", () => {
    const { events, parser } = parse(["\ufeffdata: a\n\n", "id: 9\ndata: half"]);
    assert.deepEqual(events, [{ id: "", event: "message", data: "a" }]);
    parser.end();
    assert.equal(parser.lastEventId, "");
  });
});
