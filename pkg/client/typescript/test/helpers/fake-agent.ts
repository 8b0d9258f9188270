/**
 * A scripted HTTP server standing in for the agent in unit tests of the watch: each request
 * goes to the handler, which may answer, stream, or cut the connection.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeRequest {
  method: string;
  url: URL;
  headers: IncomingMessage["headers"];
}

export type FakeHandler = (req: FakeRequest, res: ServerResponse, n: number) => void;

export class FakeAgent {
  readonly requests: FakeRequest[] = [];
  private server: Server;
  baseUrl = "";

  constructor(private handler: FakeHandler) {
    this.server = createServer((req, res) => {
      const r: FakeRequest = {
        method: req.method ?? "",
        url: new URL(req.url ?? "/", "http://fake"),
        headers: req.headers,
      };
      this.requests.push(r);
      this.handler(r, res, this.requests.length);
    });
  }

  /** Listens on port (0: a free one). */
  async start(port = 0): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(port, "127.0.0.1", resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  watches(): FakeRequest[] {
    return this.requests.filter((r) => r.url.pathname === "/api/v1/watch");
  }
}

export function sseHead(res: ServerResponse): void {
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
  res.flushHeaders();
}

export function sseEvent(res: ServerResponse, id: number, type: string, obj: unknown): void {
  res.write(`id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(obj)}\n\n`);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), ...headers });
  res.end(text);
}
