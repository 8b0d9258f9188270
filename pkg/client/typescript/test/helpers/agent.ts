/**
 * Starts the real bin/azsim and bin/dev8-agent on free loopback ports for the integration
 * tests, with configs in the form of test/integration/agent_fixture.c (the C suite's): azsim
 * with the subscription, resource groups, storage accounts and client secret below, the agent
 * pointed at it with the client-secret credential.
 *
 * The binaries come from D8_BIN_DIR (relative to the repository root, as for the C tests:
 * `make SANITIZE=... test` sets build/san/bin), else bin/. Missing binaries are a failure with
 * a message, never a skip. Each process runs in its own process group, killed when the test
 * process exits; stop() sends SIGTERM and returns the exit code, which the tests require to be
 * 0 (a sanitized agent that leaks exits non-zero).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, accessSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";

import { Dev8Client } from "../../src/client.js";
import { PKG_DIR } from "./compat.js";

export const REPO_ROOT = resolve(PKG_DIR, "../../..");
export const API_KEY = "ts-key-one";
export const API_KEY_2 = "ts-key-two";

const SUB = "00000000-0000-0000-0000-000000000000";
const TENANT = "tstest-tenant";
const CLIENT = "tstest-client";
const CLIENT_SECRET = "tstest-client-SECRET-v4lue";

export function binDir(): string {
  const d = process.env["D8_BIN_DIR"] || "bin";
  return isAbsolute(d) ? d : resolve(REPO_ROOT, d);
}

/** The path of a binary, or an Error saying how to build it. */
export function requireBinary(name: string): string {
  const p = join(binDir(), name);
  try {
    accessSync(p, constants.X_OK);
  } catch {
    throw new Error(
      `${p} is missing or not executable: build it with \`make -j2 all\` at the repository root ` +
        "(the integration tests run the real dev8-agent against the real azsim; they are never skipped)",
    );
  }
  return p;
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls fn until it returns a value other than undefined/false, or fails with `what`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    }
    await sleep(everyMs);
  }
}

const live = new Set<ChildProcess>();
function killAll(): void {
  for (const c of live) {
    try {
      if (c.pid) process.kill(-c.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
  });
}

class Proc {
  readonly child: ChildProcess;
  private exitCode: number | null | undefined;
  private exited: Promise<number | null>;

  constructor(
    readonly name: string,
    bin: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    readonly logPath: string,
  ) {
    const fd = openSync(logPath, "a");
    this.child = spawn(bin, args, { env, stdio: ["ignore", fd, fd], detached: true });
    closeSync(fd);
    live.add(this.child);
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        live.delete(this.child);
        this.exitCode = code ?? (signal ? 128 : null);
        resolve(this.exitCode);
      });
      this.child.once("error", () => {
        live.delete(this.child);
        this.exitCode = 127;
        resolve(127);
      });
    });
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** SIGTERM, then the exit code (SIGKILL and an error after timeoutMs). */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    if (!this.running) return this.exitCode ?? null;
    this.child.kill("SIGTERM");
    const t = setTimeout(() => {
      if (this.child.pid) process.kill(-this.child.pid, "SIGKILL");
    }, timeoutMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}

async function waitHttp(p: Proc, url: string, what: string, timeoutMs: number): Promise<void> {
  await waitFor(
    what,
    async () => {
      if (!p.running) throw new Error(`${p.name} exited during start-up:\n${p.logTail()}`);
      const r = await fetch(url).catch(() => undefined);
      await r?.body?.cancel().catch(() => undefined);
      return r?.ok === true;
    },
    timeoutMs,
    50,
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}\n--- ${p.name} log tail ---\n${p.logTail()}`);
  });
}

export interface LocalAgentOptions {
  /** api.watchRingSize (the agent's minimum is 16). */
  watchRingSize?: number;
  /** webhook.url, signed with webhookSecret through WEBHOOK_SECRET. */
  webhookUrl?: string;
  webhookSecret?: string;
  /** Whole top-level YAML sections appended to the agent's config. */
  extraYaml?: string;
}

/** azsim + dev8-agent, ready (an Azure token obtained). */
export class LocalAgent {
  readonly dir: string;
  baseUrl = "";
  private sim: Proc | undefined;
  private agent: Proc | undefined;
  private agentArgs: { bin: string; config: string; env: NodeJS.ProcessEnv } | undefined;
  private starts = 0;

  private constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "dev8-ts-"));
  }

  static async start(opts: LocalAgentOptions = {}): Promise<LocalAgent> {
    const agentBin = requireBinary("dev8-agent");
    const simBin = requireBinary("azsim");
    const la = new LocalAgent();
    try {
      await la.startSim(simBin);
      await la.startAgent(agentBin, opts);
    } catch (err) {
      await la.stop().catch(() => undefined);
      throw err;
    }
    return la;
  }

  private async startSim(bin: string): Promise<void> {
    const port = await freePort();
    const config = join(this.dir, "azsim.yaml");
    writeFileSync(
      config,
      [
        "# written by pkg/client/typescript/test/helpers/agent.ts",
        `subscriptions: ["${SUB}"]`,
        "resourceGroups: [rg-dev8-eastus, rg-dev8-westeurope]",
        "storageAccounts: [dev8eastus, dev8westeurope]",
        "clients:",
        `  - {tenantId: ${TENANT}, clientId: ${CLIENT}, clientSecret: ${CLIENT_SECRET}}`,
        "",
      ].join("\n"),
    );
    const args = ["--listen", `127.0.0.1:${port}`, "--config", config, "--provision-ms", "300", "--delete-ms", "200", "--log-level", "warn"];
    this.sim = new Proc("azsim", bin, args, { ...process.env }, join(this.dir, "azsim.log"));
    this.simPort = port;
    await waitHttp(this.sim, `http://127.0.0.1:${port}/_azsim/stats`, "azsim to listen", 20_000);
  }

  private simPort = 0;

  private async startAgent(bin: string, opts: LocalAgentOptions): Promise<void> {
    const port = await freePort();
    const sim = `http://127.0.0.1:${this.simPort}`;
    const yaml = [
      "# written by pkg/client/typescript/test/helpers/agent.ts",
      "controller:",
      "  name: dev8-tstest",
      `  listen: 127.0.0.1:${port}`,
      "  resyncSeconds: 2",
      "  statusRefreshSeconds: 4",
      "  shutdownGraceSeconds: 5",
      "api:",
      "  maxBodyBytes: 65536",
      ...(opts.watchRingSize ? [`  watchRingSize: ${opts.watchRingSize}`] : []),
      "azure:",
      "  auth: clientSecret",
      `  subscriptionId: "${SUB}"`,
      `  armEndpoint: ${sim}`,
      `  authorityHost: ${sim}`,
      `  imdsEndpoint: ${sim}`,
      "  regions:",
      "    - name: eastus",
      "      resourceGroup: rg-dev8-eastus",
      "      storageAccount: dev8eastus",
      "    - name: westeurope",
      "      resourceGroup: rg-dev8-westeurope",
      "      storageAccount: dev8westeurope",
      "images:",
      '  node: "vaibhavsing/dev8-workspace:latest"',
      '  python: "vaibhavsing/dev8-workspace-python:latest"',
      ...(opts.webhookUrl ? ["webhook:", `  url: "${opts.webhookUrl}"`, "  secretEnv: DEV8_TS_WEBHOOK_SECRET"] : []),
      "log:",
      "  level: info",
      opts.extraYaml ?? "",
    ].join("\n");
    const config = join(this.dir, "agent.yaml");
    writeFileSync(config, `${yaml}\n`);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AGENT_API_KEYS: `${API_KEY},${API_KEY_2}`,
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: CLIENT,
      AZURE_CLIENT_SECRET: CLIENT_SECRET,
      DEV8_SPEC_HASH_KEY: "tstest-spec-hash-key",
    };
    if (opts.webhookSecret !== undefined) env["DEV8_TS_WEBHOOK_SECRET"] = opts.webhookSecret;
    this.agentArgs = { bin, config, env };
    this.baseUrl = `http://127.0.0.1:${port}`;
    await this.launchAgent();
  }

  private async launchAgent(): Promise<void> {
    const a = this.agentArgs;
    if (!a) throw new Error("the agent was never configured");
    this.starts++;
    this.agent = new Proc("dev8-agent", a.bin, ["--config", a.config], a.env, join(this.dir, `agent-${this.starts}.log`));
    // Ready: listening, config loaded and an Azure token obtained from azsim.
    await waitHttp(this.agent, `${this.baseUrl}/readyz`, "dev8-agent to be ready", 20_000);
  }

  /** Stops the agent (exit code returned) and starts it again on the same port and config. */
  async restartAgent(): Promise<number | null> {
    const code = (await this.agent?.stop()) ?? null;
    await this.launchAgent();
    return code;
  }

  client(apiKey = API_KEY, baseUrl = this.baseUrl): Dev8Client {
    return new Dev8Client({ baseUrl, apiKey, timeoutMs: 15_000 });
  }

  agentLog(): string {
    return this.agent?.logTail(60) ?? "";
  }

  /**
   * Stops both (agent first, so that it does not log the emulator's disappearance as an
   * error) and returns their exit codes; removes the temporary directory unless
   * D8_TEST_KEEP=1 or something failed.
   */
  async stop(): Promise<{ agent: number | null; sim: number | null; agentLog: string }> {
    const agentLog = this.agentLog();
    const agent = (await this.agent?.stop()) ?? 0;
    const sim = (await this.sim?.stop()) ?? 0;
    if (agent === 0 && sim === 0 && process.env["D8_TEST_KEEP"] !== "1" && existsSync(this.dir)) {
      rmSync(this.dir, { recursive: true, force: true });
    }
    return { agent, sim, agentLog };
  }
}
