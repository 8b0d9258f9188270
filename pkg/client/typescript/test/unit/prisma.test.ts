import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { rowMatchesStatus, rowPatchFromStatus, specFromRow, type EnvironmentRow } from "../../src/prisma.js";
import { sampleEnvironment } from "../helpers/fixtures.js";

/** A row as Prisma returns it (columns of the architecture note). */
function row(over: Partial<EnvironmentRow> = {}): EnvironmentRow {
  return {
    id: "ckx1",
    userId: "user_abc123",
    name: "My Dev Environment",
    status: "RUNNING",
    cloudProvider: "AZURE",
    cloudRegion: "eastus",
    aciContainerGroupId: "dev8-ckx1",
    aciPublicIp: "20.185.123.45",
    azureFileShareName: "dev8-ckx1",
    vsCodeUrl: "http://dev8-ckx1.eastus.azurecontainer.io:8080",
    cpuCores: 2,
    memoryGB: 4,
    storageGB: 20,
    baseImage: "node",
    createdAt: new Date("2025-10-04T12:00:00Z"),
    updatedAt: new Date("2025-10-04T12:00:00Z"),
    lastAccessedAt: new Date("2025-10-04T12:00:00Z"),
    ...over,
  };
}

describe("specFromRow", () => {
  it("maps the spec columns and nothing else", () => {
    assert.deepEqual(specFromRow(row()), {
      id: "ckx1",
      userId: "user_abc123",
      name: "My Dev Environment",
      cloudProvider: "AZURE",
      cloudRegion: "eastus",
      baseImage: "node",
      cpuCores: 2,
      memoryGB: 4,
      storageGB: 20,
    });
  });

  it("never sends powerState, whatever the row's status", () => {
    for (const status of ["RUNNING", "STOPPED", "STOPPING", "ERROR"]) {
      const spec = specFromRow(row({ status }), { A: "b" });
      assert.equal("powerState" in spec, false, status);
    }
  });

  it("sends secretEnv only when given ({} clears the stored secrets)", () => {
    assert.equal("secretEnv" in specFromRow(row()), false);
    assert.deepEqual(specFromRow(row(), {}).secretEnv, {});
    const secrets = { GITHUB_TOKEN: "ghp_x" };
    const spec = specFromRow(row(), secrets);
    assert.deepEqual(spec.secretEnv, secrets);
    assert.notEqual(spec.secretEnv, secrets, "a copy: later changes of the caller's object do not leak in");
  });

  it("leaves out null columns so the agent's defaults apply, and reads Prisma Decimals", () => {
    const spec = specFromRow(
      row({ baseImage: null, cpuCores: { toNumber: () => 0.5 }, memoryGB: null, storageGB: undefined, cloudProvider: null }),
    );
    assert.deepEqual(spec, { id: "ckx1", userId: "user_abc123", name: "My Dev Environment", cloudRegion: "eastus", cpuCores: 0.5 });
  });

  it("takes the spec fields that have no column from extras", () => {
    const spec = specFromRow(row(), undefined, {
      env: { EDITOR: "vim" },
      autoStopMinutes: 30,
      storagePolicy: "Retain",
      updatePolicy: "OnNextStart",
    });
    assert.deepEqual(
      [spec.env, spec.autoStopMinutes, spec.storagePolicy, spec.updatePolicy],
      [{ EDITOR: "vim" }, 30, "Retain", "OnNextStart"],
    );
    assert.equal("secretEnv" in spec, false);
  });
});

describe("rowPatchFromStatus", () => {
  it("writes the phase as status and the resource fields under their Prisma column names", () => {
    const env = sampleEnvironment();
    assert.deepEqual(rowPatchFromStatus(env), {
      status: "RUNNING",
      aciContainerGroupId: "dev8-ckx1",
      aciPublicIp: "20.1.2.3",
      azureFileShareName: "dev8-ckx1",
      vsCodeUrl: "http://dev8-ckx1-3f9a2c.eastus.azurecontainer.io:8080",
    });
  });

  it("writes nulls (a stopped group has no IP) and touches no column the backend owns", () => {
    const patch = rowPatchFromStatus(sampleEnvironment({ phase: "STOPPED", aciPublicIp: null }));
    assert.equal(patch.status, "STOPPED");
    assert.equal(patch.aciPublicIp, null);
    assert.deepEqual(Object.keys(patch).sort(), ["aciContainerGroupId", "aciPublicIp", "azureFileShareName", "status", "vsCodeUrl"]);
  });

  it("rowMatchesStatus tells when a write would change nothing", () => {
    const env = sampleEnvironment();
    assert.equal(rowMatchesStatus({ ...rowPatchFromStatus(env), name: "x" }, env), true);
    assert.equal(rowMatchesStatus({ ...rowPatchFromStatus(env), aciPublicIp: null }, env), false);
    const stopped = sampleEnvironment({ phase: "STOPPED", aciPublicIp: null });
    assert.equal(rowMatchesStatus({ ...rowPatchFromStatus(stopped), aciPublicIp: undefined }, stopped), true);
  });
});
