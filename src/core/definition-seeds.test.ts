import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseJobDefinition } from "./definition-parser.ts";

// The YAML examples of seed 000 (shared/seeds/000_2fb0d725af5e2b9b.txt), copied verbatim.
const HTTP_JOB = `
job_type: http-job
tasks:
- task_type: get
  method: HTTP_GET
  url: https://jsonplaceholder.typicode.com/todos/1
  on_completed: post
- task_type: post
  method: HTTP_POST_JSON
  url: https://jsonplaceholder.typicode.com/todos
  on_completed: put
- task_type: put
  method: HTTP_PUT_JSON
  url: https://jsonplaceholder.typicode.com/todos/1
  on_completed: delete
- task_type: delete
  method: HTTP_DELETE
  url: https://jsonplaceholder.typicode.com/todos/1
`;
const WEB_JOB = `
job_type: web-job
tasks:
- task_type: process
  method: WEBSOCKET
  tags:
    - web
    - js
`;
const MESSAGING_JOB = `
job_type: messaging-job
timeout: 60s
tasks:
- task_type: trigger
  method: MESSAGING
  messaging_request_queue: formicary-message-ant-request
  messaging_reply_queue: formicary-message-ant-response
`;

/** The seed's Docker task properties (a task without task_type in the seed). */
const DOCKER_TASK = `
name: task1
method: DOCKER
environment:
  AWS-KEY: Mykey
container:
  image: ubuntu:16.04
privileged: true
network_mode: mod1
host_network: true
`;

/** The seed's full Kubernetes task properties. */
const KUBERNETES_TASK = `
name: task1
method: KUBERNETES
environment:
  AWS-KEY: Mykey
container:
  image: ubuntu:16.04
  volumes:
    host_path:
      - name: mount1
        mount_path: /shared
        host_path: /host/shared
    pvc:
      - name: mount2
        mount_path: /mnt/sh1
    config_map:
      - name: mount3
        mount_path: /mnt/sh2
        items:
          item1: val1
    secret:
      - name: mount4
        mount_path: /mnt/sh3
        items:
          item1: val1
    empty_dir:
      - name: mount4
        mount_path: /mnt/sh3
    projected:
      - name: oidc-token
        mount_path: /var/run/sigstore/cosign
        sources:
          - service_account_token:
            path: oidc-token
            expiration_seconds: 600
            audience: sigstore
  volume_driver: voldriver
  devices:
    - devices
  bind_dir: /shared
  cpu_limit: "1"
  cpu_request: 500m
  memory_limit: 1Gi
  memory_request: 1Gi
services:
  - name: svc-name
    image: ubuntu:16.04
    command:
      - cmd1
    entrypoint:
      - /bin/bash
    volumes:
      host_path:
        - name: svc-mount1
          mount_path: /shared
          host_path: /host/shared
          read_only: false
      pvc:
        - name: svc-mount2
          mount_path: /mnt/sh1
          read_only: true
      config_map:
        - name: svc-mount3
          mount_path: /mnt/sh2
          read_only: true
          items:
            item1: val1
      secret:
        - name: svc-mount4
          mount_path: /mnt/sh3
          items:
            mysecret: file-name
      empty_dir:
        - name: svc-mount5
          mount_path: /mnt/sh3
      projected:
        - name: oidc-token
          mount_path: /var/run/sigstore/cosign
          sources:
            - service_account_token:
              path: oidc-token
              expiration_seconds: 600
              audience: sigstore
    cpu_limit: "1"
    cpu_request: 500m
    memory_limit: 1Gi
    memory_request: 1Gi
privileged: true
affinity:
  required_during_scheduling_ignored_during_execution:
    node_selector_terms:
      - match_expressions:
          - key: datacenter
            operator: In
            values:
              - seattle
        match_fields:
          - key: key2
            operator: In
            values:
              - val2
  preferred_during_scheduling_ignored_during_execution:
    - weight: 1
      preference:
        match_expressions:
          - key: datacenter
            operator: In
            values:
              - chicago
        match_fields:
          - key: color
            operator: In
            values:
              - blue
node_selector:
  formicary: "true"
node_tolerations:
  empty: PreferNoSchedule
  myrole: NoSchedule
pod_labels:
  foo: bar
pod_annotations:
  ann1: val
network_mode: mod1
host_network: true
`;

/** A job whose only task is `taskYaml` plus a task_type, as the seed's task examples need. */
function jobWithTask(jobType: string, taskYaml: string): string {
  const body = taskYaml
    .trim()
    .split("\n")
    .map((line) => (line === "" ? line : `  ${line}`))
    .join("\n");
  return `job_type: ${jobType}\ntasks:\n- task_type: main\n${body}\n`;
}

void describe("parseJobDefinition: the seed 000 examples", () => {
  void it("http-job: four HTTP tasks chained by on_completed", () => {
    const def = parseJobDefinition(HTTP_JOB);
    assert.equal(def.jobType, "http-job");
    assert.deepEqual(
      def.tasks.map((t) => [t.taskType, t.method, t.url, t.onCompleted]),
      [
        ["get", "HTTP_GET", "https://jsonplaceholder.typicode.com/todos/1", ["post"]],
        ["post", "HTTP_POST_JSON", "https://jsonplaceholder.typicode.com/todos", ["put"]],
        ["put", "HTTP_PUT_JSON", "https://jsonplaceholder.typicode.com/todos/1", ["delete"]],
        ["delete", "HTTP_DELETE", "https://jsonplaceholder.typicode.com/todos/1", []],
      ],
    );
  });

  void it("web-job: a WEBSOCKET task routed by tags", () => {
    const def = parseJobDefinition(WEB_JOB);
    assert.equal(def.jobType, "web-job");
    assert.equal(def.tasks[0]?.method, "WEBSOCKET");
    assert.deepEqual(def.tasks[0]?.tags, ["web", "js"]);
  });

  void it("messaging-job: both queues and the job timeout", () => {
    const def = parseJobDefinition(MESSAGING_JOB);
    assert.equal(def.timeoutMs, 60_000);
    assert.equal(def.tasks[0]?.method, "MESSAGING");
    assert.equal(def.tasks[0]?.messagingRequestQueue, "formicary-message-ant-request");
    assert.equal(def.tasks[0]?.messagingReplyQueue, "formicary-message-ant-response");
  });

  void it("the Docker task example: container options kept under their YAML keys", () => {
    const task = parseJobDefinition(jobWithTask("docker-job", DOCKER_TASK)).tasks[0];
    assert.ok(task);
    assert.equal(task.method, "DOCKER");
    assert.deepEqual(task.environment, { "AWS-KEY": "Mykey" });
    assert.deepEqual(task.executorOptions, {
      name: "task1",
      container: { image: "ubuntu:16.04" },
      privileged: true,
      network_mode: "mod1",
      host_network: true,
    });
  });

  void it("the full Kubernetes task example: every pod field kept verbatim in executorOptions", () => {
    const task = parseJobDefinition(jobWithTask("k8s-job", KUBERNETES_TASK)).tasks[0];
    assert.ok(task);
    assert.equal(task.method, "KUBERNETES");
    assert.deepEqual(task.environment, { "AWS-KEY": "Mykey" });
    const opts = task.executorOptions;
    assert.deepEqual(Object.keys(opts).sort(), [
      "affinity",
      "container",
      "host_network",
      "name",
      "network_mode",
      "node_selector",
      "node_tolerations",
      "pod_annotations",
      "pod_labels",
      "privileged",
      "services",
    ]);
    const container = opts["container"] as Record<string, unknown>;
    assert.equal(container["image"], "ubuntu:16.04");
    assert.equal(container["cpu_limit"], "1");
    assert.equal(container["memory_request"], "1Gi");
    const volumes = container["volumes"] as Record<string, unknown[]>;
    assert.deepEqual(volumes["host_path"], [
      { name: "mount1", mount_path: "/shared", host_path: "/host/shared" },
    ]);
    assert.deepEqual(volumes["projected"], [
      {
        name: "oidc-token",
        mount_path: "/var/run/sigstore/cosign",
        sources: [
          {
            service_account_token: null,
            path: "oidc-token",
            expiration_seconds: 600,
            audience: "sigstore",
          },
        ],
      },
    ]);
    const [service] = opts["services"] as Array<Record<string, unknown>>;
    assert.equal(service?.["name"], "svc-name");
    assert.deepEqual(service?.["entrypoint"], ["/bin/bash"]);
    assert.deepEqual(opts["node_selector"], { formicary: "true" });
    assert.deepEqual(opts["node_tolerations"], { empty: "PreferNoSchedule", myrole: "NoSchedule" });
    assert.deepEqual(opts["pod_labels"], { foo: "bar" });
    assert.deepEqual(opts["pod_annotations"], { ann1: "val" });
    const affinity = opts["affinity"] as Record<string, unknown>;
    assert.deepEqual(affinity["preferred_during_scheduling_ignored_during_execution"], [
      {
        weight: 1,
        preference: {
          match_expressions: [{ key: "datacenter", operator: "In", values: ["chicago"] }],
          match_fields: [{ key: "color", operator: "In", values: ["blue"] }],
        },
      },
    ]);
    assert.equal(opts["privileged"], true);
    assert.equal(opts["host_network"], true);
  });
});
