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
  /** The request head of each connection accepted while not blocked. */
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
      let head = "";
      client.on("data", (d: Buffer) => {
        if (head.length < 4096 && !head.includes("\r\n\r\n")) {
          head += d.toString("latin1");
          if (head.includes("\r\n\r\n")) this.heads.push(head.slice(0, head.indexOf("\r\n\r\n")));
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
