/**
 * The pod builder on the seed's two Kubernetes examples (the ant config and the task,
 * verbatim in test/fixtures/seed-containers): every field of both lands in the pod, and
 * the pod (and the registry secret) pass the official Kubernetes schema with no
 * unknown field. No cluster runs here; test/kubernetes-executor.test.ts covers the
 * lifecycle against a fake API server.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { V1Container, V1Pod, V1Volume } from "@kubernetes/client-node";
import { ColonyError } from "../src/core/errors.ts";
import type { ExecutionRequest } from "../src/core/executor.ts";
import type { TaskDefinition } from "../src/core/job-definition.ts";
import {
  redactSecrets,
  taskContainerOptions,
  type KubernetesConfig,
} from "../src/executors/container-options.ts";
import { kubeConfigOptions } from "../src/executors/kubernetes/kube-client.ts";
import { buildPod, podName, registrySecret } from "../src/executors/kubernetes/pod-builder.ts";
import { podProblems, secretProblems } from "./support/kube-schema.ts";
import { seedKubernetesConfig, seedTask, seedText } from "./support/seed-fixtures.ts";

function request(task: TaskDefinition, env: Record<string, string> = {}): ExecutionRequest {
  return {
    executionId: "AbC123xY",
    method: "KUBERNETES",
    task,
    env: { ...task.environment, ...env },
    variables: {},
    unitDir: "/var/lib/colony/units/AbC123xY",
    jobType: "seed-kubernetes-task",
    jobRequestId: 7,
  };
}

function build(
  config: KubernetesConfig,
  task: TaskDefinition,
  extra: { registrySecret?: string } = {},
) {
  return buildPod({
    request: request(task),
    options: taskContainerOptions(task),
    config,
    owner: "node-1",
    graceSeconds: 10,
    ...extra,
  });
}

const volume = (pod: V1Pod, name: string): V1Volume | undefined =>
  pod.spec?.volumes?.find((v) => v.name === name);
const container = (pod: V1Pod, name: string): V1Container => {
  const c = pod.spec?.containers.find((x) => x.name === name);
  assert.ok(c, `no container ${name}`);
  return c;
};
const mountsOf = (c: V1Container) =>
  Object.fromEntries(
    (c.volumeMounts ?? []).map((m) => [`${m.name}@${m.mountPath}`, m.readOnly ?? null]),
  );

describe("pod builder: the seed's Kubernetes examples", () => {
  const config = seedKubernetesConfig();
  const task = seedTask("kubernetes-task", ["echo hello"]);
  const built = build(config, task, { registrySecret: "seed-registry" });
  const pod = built.pod;
  const spec = pod.spec!;

  it("parses both examples as colony takes them (config schema, definition parser)", () => {
    assert.equal(config.namespace, "default");
    assert.equal(task.method, "KUBERNETES");
    assert.equal(task.executorOptions["name"], "task1");
  });

  it("produces a pod valid against the official schema, with no unknown field", async () => {
    assert.deepEqual(await podProblems(pod), []);
    assert.equal(pod.apiVersion, "v1");
    assert.equal(pod.kind, "Pod");
    assert.equal(spec.restartPolicy, "Never");
    assert.equal(spec.terminationGracePeriodSeconds, 10);
  });

  it("maps the ant config: namespace, service account, pull secrets, dns, security context, caps", () => {
    assert.equal(pod.metadata?.namespace, "default");
    assert.equal(spec.serviceAccountName, "my-svc-account");
    assert.deepEqual(spec.imagePullSecrets, [
      { name: "image-pull-secret" },
      { name: "seed-registry" },
    ]);
    assert.equal(spec.dnsPolicy, "None");
    assert.deepEqual(spec.securityContext, {
      fsGroup: 100,
      runAsGroup: 100,
      runAsNonRoot: true,
      runAsUser: 1000,
      supplementalGroups: [200, 300],
    });
    for (const c of spec.containers) {
      assert.deepEqual(
        c.securityContext?.capabilities,
        { add: ["NET_RAW", "CAP1"], drop: ["CAP2"] },
        c.name,
      );
      assert.equal(
        c.imagePullPolicy,
        "IfNotPresent",
        `${c.name}: registry.pull_policy if-not-present`,
      );
    }
  });

  it("maps the registry credentials to a dockerconfigjson secret, valid against the schema", async () => {
    const secret = registrySecret(config, "seed-registry", "default", {
      "colony.unit-id": "AbC123xY",
    })!;
    assert.deepEqual(await secretProblems(secret), []);
    assert.equal(secret.type, "kubernetes.io/dockerconfigjson");
    const json = JSON.parse(
      Buffer.from(secret.data![".dockerconfigjson"]!, "base64").toString(),
    ) as {
      auths: Record<string, { username: string; password: string; auth: string }>;
    };
    const entry = json.auths["docker-registry-server"]!;
    assert.equal(entry.username, "docker-registry-user");
    assert.equal(entry.password, "docker-registry-pass");
    assert.equal(
      Buffer.from(entry.auth, "base64").toString(),
      "docker-registry-user:docker-registry-pass",
    );
  });

  it("maps host, bearer_token, cert_file, key_file and ca_file to the client connection", () => {
    const kc = kubeConfigOptions(config);
    assert.deepEqual(kc.clusters, [
      {
        name: "colony",
        server: "https://kubernetes-host",
        caFile: "kubernetes-cafile",
        skipTLSVerify: false,
      },
    ]);
    assert.deepEqual(kc.users, [
      {
        name: "colony",
        token: "kubernetes-bearer",
        certFile: "kubernetes-cert",
        keyFile: "kubernetes-key",
      },
    ]);
    assert.equal(kc.contexts[0]?.namespace, "default");
    // Shown anywhere (API, logs), the password and the token are masked.
    const shown = JSON.stringify(redactSecrets(config));
    assert.ok(
      !shown.includes("docker-registry-pass") && !shown.includes("kubernetes-bearer"),
      shown,
    );
    assert.match(shown, /"password":"\*{8}"/);
  });

  it("maps the task's main container: name, image, environment, script, resources", () => {
    assert.equal(built.mainContainer, "task1");
    assert.match(pod.metadata!.name!, /^task1-abc123xy-[0-9a-f]{5}$/);
    const main = container(pod, "task1");
    assert.equal(main.image, "ubuntu:16.04");
    assert.deepEqual(main.env, [{ name: "AWS-KEY", value: "Mykey" }]);
    assert.deepEqual(main.command, ["/bin/sh", "-c"]);
    assert.equal(main.args?.length, 1);
    assert.match(main.args![0]!, /^set -e\necho hello\n$/);
    assert.deepEqual(main.resources, {
      limits: { cpu: "1", memory: "1Gi" },
      requests: { cpu: "500m", memory: "1Gi" },
    });
    assert.equal(main.securityContext?.privileged, true, "privileged: true");
  });

  it("maps the main container's volumes: host_path, pvc, config_map, secret, empty_dir, projected", () => {
    assert.deepEqual(volume(pod, "mount1"), { name: "mount1", hostPath: { path: "/host/shared" } });
    assert.deepEqual(volume(pod, "mount2"), {
      name: "mount2",
      persistentVolumeClaim: { claimName: "mount2" },
    });
    assert.deepEqual(volume(pod, "mount3"), {
      name: "mount3",
      configMap: { name: "mount3", items: [{ key: "item1", path: "val1" }] },
    });
    assert.deepEqual(volume(pod, "mount4"), {
      name: "mount4",
      secret: { secretName: "mount4", items: [{ key: "item1", path: "val1" }] },
    });
    // The seed reuses the name mount4 for its empty_dir: pod volume names must be unique.
    assert.deepEqual(volume(pod, "mount4-empty-dir"), { name: "mount4-empty-dir", emptyDir: {} });
    assert.deepEqual(volume(pod, "oidc-token"), {
      name: "oidc-token",
      projected: {
        sources: [
          {
            serviceAccountToken: {
              path: "oidc-token",
              expirationSeconds: 600,
              audience: "sigstore",
            },
          },
        ],
      },
    });
    assert.deepEqual(mountsOf(container(pod, "task1")), {
      "mount1@/shared": null,
      "mount2@/mnt/sh1": null,
      "mount3@/mnt/sh2": null,
      "mount4@/mnt/sh3": null,
      "mount4-empty-dir@/mnt/sh3": null,
      "oidc-token@/var/run/sigstore/cosign": null,
      "device-0@/dev/devices": null,
      "bind-dir@/shared": null,
    });
  });

  it("maps volume_driver, devices and bind_dir", () => {
    assert.equal(pod.metadata?.annotations?.["colony.volume-driver"], "voldriver");
    assert.deepEqual(volume(pod, "device-0"), { name: "device-0", hostPath: { path: "devices" } });
    assert.deepEqual(volume(pod, "bind-dir"), {
      name: "bind-dir",
      hostPath: { path: "/shared", type: "DirectoryOrCreate" },
    });
  });

  it("maps the service as an svc- container with its own volumes (read_only, items) and resources", () => {
    assert.deepEqual(
      spec.containers.map((c) => c.name),
      ["task1", "svc-name"],
    );
    const svc = container(pod, "svc-name");
    assert.equal(svc.image, "ubuntu:16.04");
    assert.deepEqual(svc.command, ["/bin/bash"], "entrypoint");
    assert.deepEqual(svc.args, ["cmd1"], "command");
    assert.deepEqual(svc.resources, {
      limits: { cpu: "1", memory: "1Gi" },
      requests: { cpu: "500m", memory: "1Gi" },
    });
    assert.deepEqual(mountsOf(svc), {
      "svc-mount1@/shared": false,
      "svc-mount2@/mnt/sh1": true,
      "svc-mount3@/mnt/sh2": true,
      "svc-mount4@/mnt/sh3": null,
      "svc-mount5@/mnt/sh3": null,
      "oidc-token@/var/run/sigstore/cosign": null,
    });
    assert.deepEqual(volume(pod, "svc-mount1"), {
      name: "svc-mount1",
      hostPath: { path: "/host/shared" },
    });
    assert.deepEqual(volume(pod, "svc-mount2"), {
      name: "svc-mount2",
      persistentVolumeClaim: { claimName: "svc-mount2", readOnly: true },
    });
    assert.deepEqual(volume(pod, "svc-mount3"), {
      name: "svc-mount3",
      configMap: { name: "svc-mount3", items: [{ key: "item1", path: "val1" }] },
    });
    assert.deepEqual(volume(pod, "svc-mount4"), {
      name: "svc-mount4",
      secret: { secretName: "svc-mount4", items: [{ key: "mysecret", path: "file-name" }] },
    });
    assert.deepEqual(volume(pod, "svc-mount5"), { name: "svc-mount5", emptyDir: {} });
    // The same projected token in both containers is one pod volume.
    assert.equal(spec.volumes?.filter((v) => v.name.startsWith("oidc-token")).length, 1);
    assert.equal(svc.securityContext?.privileged, true);
  });

  it("maps affinity (required and preferred, match_expressions and match_fields)", () => {
    assert.deepEqual(spec.affinity, {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            {
              matchExpressions: [{ key: "datacenter", operator: "In", values: ["seattle"] }],
              matchFields: [{ key: "key2", operator: "In", values: ["val2"] }],
            },
          ],
        },
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 1,
            preference: {
              matchExpressions: [{ key: "datacenter", operator: "In", values: ["chicago"] }],
              matchFields: [{ key: "color", operator: "In", values: ["blue"] }],
            },
          },
        ],
      },
    });
  });

  it("maps node_selector, node_tolerations, pod_labels, pod_annotations, network_mode, host_network", () => {
    assert.deepEqual(spec.nodeSelector, { formicary: "true" });
    assert.deepEqual(spec.tolerations, [
      { key: "empty", operator: "Exists", effect: "PreferNoSchedule" },
      { key: "myrole", operator: "Exists", effect: "NoSchedule" },
    ]);
    assert.equal(pod.metadata?.labels?.["foo"], "bar");
    assert.equal(pod.metadata?.labels?.["colony.unit-id"], "AbC123xY");
    assert.equal(pod.metadata?.labels?.["colony.owner"], "node-1");
    assert.equal(pod.metadata?.labels?.["colony.job-request-id"], "7");
    assert.equal(pod.metadata?.annotations?.["ann1"], "val");
    assert.equal(pod.metadata?.annotations?.["colony.unit-dir"], "/var/lib/colony/units/AbC123xY");
    assert.equal(pod.metadata?.annotations?.["colony.network-mode"], "mod1");
    assert.equal(spec.hostNetwork, true);
  });

  it("reports what a real API server would refuse in the seed's example", () => {
    assert.deepEqual(built.warnings.sort(), [
      "container 'svc-name' mounts two volumes at /mnt/sh3; the API server refuses duplicate mount paths",
      "container 'task1' mounts two volumes at /mnt/sh3; the API server refuses duplicate mount paths",
      "container 'task1' mounts two volumes at /shared; the API server refuses duplicate mount paths",
      "container.devices[0]: 'devices' is not a device path",
      "dns_policy none needs dns_config with at least one nameserver; the API server refuses the pod without it",
    ]);
  });
});

describe("pod builder: the rest of the ant config and defaults", () => {
  const plain = seedTask("kubernetes-task", ["true"]);
  const minimal: TaskDefinition = {
    ...plain,
    environment: {},
    executorOptions: { container: { image: "busybox:1.36" } },
  };

  it("maps dns_config, host_aliases, ant volumes and environment, pull_policy never", async () => {
    const config: KubernetesConfig = {
      dns_policy: "none",
      dns_config: {
        nameservers: ["1.1.1.1"],
        searches: ["svc.local"],
        options: ["ndots:2", { name: "edns0" }],
      },
      host_aliases: [{ ip: "10.1.2.3", hostnames: ["db.local", "cache.local"] }],
      volumes: {
        empty_dir: [
          { name: "scratch", mount_path: "/scratch", medium: "Memory", size_limit: "64Mi" },
        ],
      },
      environment: { FROM_ANT: "1", AWS_REGION: "us-east-1" },
      pull_policy: "never",
    };
    const { pod, warnings } = build(config, minimal);
    assert.deepEqual(await podProblems(pod), []);
    assert.deepEqual(warnings, []);
    assert.deepEqual(pod.spec?.dnsConfig, {
      nameservers: ["1.1.1.1"],
      searches: ["svc.local"],
      options: [{ name: "ndots", value: "2" }, { name: "edns0" }],
    });
    assert.deepEqual(pod.spec?.hostAliases, [
      { ip: "10.1.2.3", hostnames: ["db.local", "cache.local"] },
    ]);
    assert.deepEqual(volume(pod, "scratch"), {
      name: "scratch",
      emptyDir: { medium: "Memory", sizeLimit: "64Mi" },
    });
    const main = pod.spec!.containers[0]!;
    assert.deepEqual(main.volumeMounts, [{ name: "scratch", mountPath: "/scratch" }]);
    assert.deepEqual(main.env, [
      { name: "FROM_ANT", value: "1" },
      { name: "AWS_REGION", value: "us-east-1" },
    ]);
    assert.equal(main.imagePullPolicy, "Never");
  });

  it("runs unprivileged by default: no privilege escalation, NET_RAW dropped, no host network", async () => {
    const { pod } = build({}, minimal);
    assert.deepEqual(await podProblems(pod), []);
    const main = pod.spec!.containers[0]!;
    assert.deepEqual(main.securityContext, {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["NET_RAW"] },
    });
    assert.equal(pod.spec?.hostNetwork, undefined);
    assert.equal(pod.metadata?.namespace, "default");
    assert.equal(main.imagePullPolicy, "IfNotPresent");
  });

  it("refuses privileged pods when the ant forbids them, and bad quantities, naming the key", () => {
    const privileged: TaskDefinition = {
      ...minimal,
      executorOptions: { container: { image: "busybox" }, privileged: true },
    };
    assert.throws(
      () => build({ allow_privileged: false }, privileged),
      (e: unknown) => e instanceof ColonyError && /allow_privileged: false/.test(e.message),
    );
    const bad: TaskDefinition = {
      ...minimal,
      executorOptions: { container: { image: "busybox", cpu_limit: "lots" } },
    };
    assert.throws(
      () => build({}, bad),
      (e: unknown) =>
        e instanceof ColonyError &&
        /container\.cpu_limit 'lots' is not a Kubernetes quantity/.test(e.message),
    );
    const typo: TaskDefinition = {
      ...minimal,
      executorOptions: {
        container: { image: "busybox", volumes: { pvc: [{ name: "x", mount_pth: "/x" }] } },
      },
    };
    assert.throws(
      () => taskContainerOptions(typo),
      (e: unknown) => e instanceof ColonyError && /container\.volumes\.pvc\[0\]/.test(e.message),
    );
  });

  it("names pods after the task and the exact unit id (lowercase, hashed for case)", () => {
    assert.notEqual(podName("t", "abcdefgh"), podName("t", "ABCDEFGH"));
    assert.match(podName("My_Task.Name", "Zz00aaBB"), /^my-task-name-zz00aabb-[0-9a-f]{5}$/);
    assert.ok(podName("x".repeat(100), "Zz00aaBB").length <= 63);
  });

  it("shows the seed's four examples in docs/containers.md exactly as tested here", () => {
    const docs = readFileSync(new URL("../docs/containers.md", import.meta.url), "utf8");
    const blocks = [...docs.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
    for (const name of [
      "docker-ant",
      "docker-task",
      "kubernetes-ant",
      "kubernetes-task",
    ] as const) {
      assert.ok(
        blocks.includes(seedText(name)),
        `docs/containers.md shows seed-${name}.yaml verbatim`,
      );
    }
  });
});
