import type { Environment } from "../../src/types.js";

/** An Environment as the agent answers it (shape of pkg/store/store.c obj_json). */
export function sampleEnvironment(over: Partial<Environment["status"]> = {}, id = "ckx1"): Environment {
  return {
    id,
    generation: 3,
    spec: {
      userId: "u1",
      name: "my env",
      cloudRegion: "eastus",
      baseImage: "node",
      cpuCores: 2,
      memoryGB: 4,
      storageGB: 20,
      powerState: "Running",
      env: { EDITOR: "vim" },
      secretEnv: { GITHUB_TOKEN: "<redacted>" },
      autoStopMinutes: 0,
      storagePolicy: "Delete",
      updatePolicy: "Immediate",
    },
    status: {
      phase: "RUNNING",
      observedGeneration: 3,
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "Available",
          message: "",
          lastTransitionTime: "2026-11-27T12:00:00Z",
        },
        {
          type: "Synced",
          status: "True",
          reason: "ReconcileSuccess",
          message: "",
          lastTransitionTime: "2026-11-27T12:00:00Z",
        },
      ],
      aciContainerGroupId: `dev8-${id}`,
      aciPublicIp: "20.1.2.3",
      azureFileShareName: `dev8-${id}`,
      fqdn: `dev8-${id}-3f9a2c.eastus.azurecontainer.io`,
      vsCodeUrl: `http://dev8-${id}-3f9a2c.eastus.azurecontainer.io:8080`,
      lastActivityTime: null,
      lastReconcileTime: "2026-11-27T12:00:01Z",
      observedTime: "2026-11-27T12:00:01Z",
      lastError: null,
      retry: null,
      ...over,
    },
    createdAt: "2026-11-27T11:59:00Z",
    updatedAt: "2026-11-27T12:00:01Z",
  };
}
