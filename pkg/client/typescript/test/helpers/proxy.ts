/**
 * A TCP proxy in front of the agent whose connections a test can cut, to drop a watch stream
 * the way a load balancer or a network failure would, and keep it from reconnecting while the
 * test changes things behind its back.
 */
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from "node:net";

export class CutProxy {
  private server: Server;
  private sockets = new Set<Socket>();
  private blocked = false;
  /** The head of each request that went through (only GETs do: no bodies to skip). */
  readonly heads: string[] = [];
  baseUrl = "";

  constructor(private readonly targetPort: number) {
    this.server = createServer((client) => {
      if (this.blocked) {
        client.destroy();
        return;
      }
      const upstream = createConnection({ host: "127.0.0.1", port: this.targetPort });
      this.sockets.add(client);
      this.sockets.add(upstream);
      let buf = "";
      client.on("data", (d: Buffer) => {
        buf += d.toString("latin1");
        for (let end = buf.indexOf("\r\n\r\n"); end >= 0; end = buf.indexOf("\r\n\r\n")) {
          this.heads.push(buf.slice(0, end));
          buf = buf.slice(end + 4);
        }
      });
      client.pipe(upstream);
      upstream.pipe(client);
      const done = (): void => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("error", done);
      upstream.on("error", done);
      client.on("close", done);
      upstream.on("close", done);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Cuts every open connection and refuses new ones until unblock(). */
  block(): void {
    this.blocked = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  unblock(): void {
    this.blocked = false;
  }

  /** The request heads that asked for the watch stream. */
  watchHeads(): string[] {
    return this.heads.filter((h) => h.startsWith("GET /api/v1/watch"));
  }

  async stop(): Promise<void> {
    this.block();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
