/**
 * The DOCKER task and ant config mapped onto Engine API bodies (container-spec.ts), on
 * the seed's Docker examples (test/fixtures/seed-containers) and the config schema.
 * Pure: test/docker-executor.test.ts runs the same mapping on a real engine.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError, validateConfigFile } from "../src/config/config.ts";
import { ColonyError } from "../src/core/errors.ts";
import type { ExecutionRequest } from "../src/core/executor.ts";
import type { TaskDefinition } from "../src/core/job-definition.ts";
import {
  parseCpu,
  parseMemory,
  pullPolicyOf,
  redactSecrets,
  taskContainerOptions,
  type DockerConfig,
} from "../src/executors/container-options.ts";
import {
  buildContainerPlan,
  registryAuth,
  SCRIPT_PATH,
  tarOneFile,
} from "../src/executors/docker/container-spec.ts";
import { seedDockerConfig, seedTask } from "./support/seed-fixtures.ts";

function request(task: TaskDefinition, extra: Partial<ExecutionRequest> = {}): ExecutionRequest {
  return {
    executionId: "Ab12Cd34",
    method: "DOCKER",
    task,
    env: { ...task.environment },
    variables: {},
    unitDir: "/data/units/Ab12Cd34",
    jobType: "seed-docker-task",
    jobRequestId: 3,
    ...extra,
  };
}

function plan(
  task: TaskDefinition,
  config: DockerConfig = {},
  extra: Partial<ExecutionRequest> = {},
) {
  return buildContainerPlan({
    request: request(task, extra),
    options: taskContainerOptions(task),
    config,
    owner: "node-1.abc",
  });
}

describe("docker container spec: the seed's Docker examples", () => {
  const config = seedDockerConfig();
  const task = seedTask("docker-task", ["echo hi"]);

  it("takes the seed's ant config through the config schema", () => {
    assert.deepEqual(config, {
      registry: {
        registry: "docker-registry-server",
        username: "docker-registry-user",
        password: "docker-registry-pass",
        pull_policy: "if-not-present",
      },
      host: "kubernetes-host",
    });
    assert.equal(pullPolicyOf(config), "if-not-present");
    assert.equal(JSON.stringify(redactSecrets(config)).includes("docker-registry-pass"), false);
  });

  it("maps every field of the seed's task: name, environment, image, privileged, network", () => {
    const p = plan(task, config);
    assert.equal(p.name, "task1-Ab12Cd34");
    assert.equal(p.image, "ubuntu:16.04");
    assert.deepEqual(p.body.Env, ["AWS-KEY=Mykey"]);
    assert.deepEqual(p.body.Entrypoint, ["/bin/sh", "-c"]);
    assert.deepEqual(p.body.Cmd, ["set -e\necho hi\n"]);
    assert.equal(p.body.HostConfig.Privileged, true);
    assert.equal(
      p.body.HostConfig.NetworkMode,
      "host",
      "host_network: true wins over network_mode",
    );
    assert.equal(p.body.HostConfig.Init, true);
    assert.deepEqual(p.body.Labels, {
      "colony.managed": "true",
      "colony.owner": "node-1.abc",
      "colony.unit-id": "Ab12Cd34",
      "colony.unit-dir": "/data/units/Ab12Cd34",
      "colony.task-type": "task1",
      "colony.job-type": "seed-docker-task",
      "colony.job-request-id": "3",
      "colony.role": "main",
    });
    assert.deepEqual(p.services, []);
    assert.equal(p.network, undefined);
    const withoutHost = seedTask("docker-task", ["true"]);
    delete withoutHost.executorOptions["host_network"];
    assert.equal(plan(withoutHost).body.HostConfig.NetworkMode, "mod1", "network_mode");
  });

  it("sends registry credentials only to their own registry", () => {
    assert.equal(registryAuth(config, "ubuntu:16.04"), undefined, "not to Docker Hub");
    const own: DockerConfig = {
      registry: { registry: "registry.example.com:5000", username: "u", password: "p" },
    };
    const header = registryAuth(own, "registry.example.com:5000/team/app:1");
    assert.ok(header);
    assert.deepEqual(JSON.parse(Buffer.from(header, "base64url").toString()), {
      username: "u",
      password: "p",
      serveraddress: "registry.example.com:5000",
    });
    assert.equal(registryAuth(own, "other.example.com/team/app:1"), undefined);
    const hub: DockerConfig = { registry: { username: "u", password: "p" } };
    assert.ok(registryAuth(hub, "library/alpine:3"), "no registry named: Docker Hub");
  });
});

describe("docker container spec: limits, services, volumes, defaults", () => {
  const base = seedTask("docker-task", ["true"]);
  const task = (options: Record<string, unknown>, script = ["true"]): TaskDefinition => ({
    ...base,
    script,
    environment: {},
    executorOptions: { container: { image: "busybox" }, ...options },
  });

  it("runs unprivileged on the default network with docker-init by default", () => {
    const p = plan(task({}));
    assert.equal(p.body.HostConfig.Privileged, false);
    assert.equal(p.body.HostConfig.NetworkMode, undefined);
    assert.equal(p.body.HostConfig.Init, true);
  });

  it("maps cpu and memory limits and requests, task level and container level", () => {
    const p = plan(
      task({
        cpu_limit: 2,
        memory_limit: "1Gi",
        container: {
          image: "busybox",
          cpu_limit: "500m",
          cpu_request: "0.25",
          memory_request: "256m",
        },
      }),
    );
    assert.equal(p.body.HostConfig.NanoCpus, 500_000_000, "the container's limit wins");
    assert.equal(p.body.HostConfig.CpuShares, 256);
    assert.equal(p.body.HostConfig.Memory, 2 ** 30);
    assert.equal(p.body.HostConfig.MemoryReservation, 256 * 2 ** 20, "docker's 256m is MiB");
    assert.throws(
      () => plan(task({ container: { image: "busybox", memory_limit: "lots" } })),
      (e: unknown) => e instanceof ColonyError && /container\.memory_limit 'lots'/.test(e.message),
    );
  });

  it("maps services to sidecars on a per-task network, reachable by name", () => {
    const p = plan(
      task({
        services: [
          {
            name: "db",
            image: "postgres:16",
            environment: { POSTGRES_PASSWORD: "x" },
            memory_limit: "256Mi",
          },
          {
            name: "cache",
            image: "redis:7",
            entrypoint: ["redis-server"],
            command: ["--port", "6380"],
          },
        ],
      }),
      { environment: { FROM_ANT: "1" } },
    );
    assert.equal(p.network?.name, "colony-net-Ab12Cd34");
    assert.equal(p.network?.labels["colony.role"], "network");
    assert.equal(p.body.HostConfig.NetworkMode, "colony-net-Ab12Cd34");
    assert.deepEqual(
      p.services.map((s) => [s.name, s.containerName, s.image]),
      [
        ["db", "seed-docker-task-task1-Ab12Cd34-svc-db", "postgres:16"],
        ["cache", "seed-docker-task-task1-Ab12Cd34-svc-cache", "redis:7"],
      ],
    );
    const db = p.services[0]!.body;
    assert.deepEqual(db.Env, ["FROM_ANT=1", "POSTGRES_PASSWORD=x"]);
    assert.equal(db.HostConfig.Memory, 256 * 2 ** 20);
    assert.deepEqual(db.NetworkingConfig, {
      EndpointsConfig: { "colony-net-Ab12Cd34": { Aliases: ["db"] } },
    });
    assert.equal(db.Labels["colony.role"], "service");
    const cache = p.services[1]!.body;
    assert.deepEqual([cache.Entrypoint, cache.Cmd], [["redis-server"], ["--port", "6380"]]);
    assert.throws(
      () => plan(task({ services: [{ name: "db", image: "x" }], host_network: true })),
      (e: unknown) => e instanceof ColonyError && /network of their own/.test(e.message),
    );
  });

  it("maps host_path and empty_dir volumes, bind_dir, devices, volume_driver; refuses cluster volumes", () => {
    const p = plan(
      task({
        container: {
          image: "busybox",
          volumes: {
            host_path: [{ name: "a", mount_path: "/in", host_path: "/srv/in", read_only: true }],
            empty_dir: [
              { name: "b", mount_path: "/scratch" },
              { name: "c", mount_path: "/fast", medium: "Memory" },
            ],
          },
          bind_dir: "/work",
          devices: ["/dev/fuse", "/dev/sda:/dev/xvda:r"],
          volume_driver: "local",
        },
      }),
    );
    const hc = p.body.HostConfig;
    assert.deepEqual(hc.Binds, ["/srv/in:/in:ro", "/work:/work"]);
    assert.deepEqual(hc.Mounts, [
      { Type: "volume", Target: "/scratch" },
      { Type: "tmpfs", Target: "/fast" },
    ]);
    assert.deepEqual(hc.Devices, [
      { PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm" },
      { PathOnHost: "/dev/sda", PathInContainer: "/dev/xvda", CgroupPermissions: "r" },
    ]);
    assert.equal(hc.VolumeDriver, "local");
    assert.throws(
      () =>
        plan(
          task({
            container: { image: "busybox", volumes: { pvc: [{ name: "x", mount_path: "/x" }] } },
          }),
        ),
      (e: unknown) =>
        e instanceof ColonyError && /volumes\.pvc needs a Kubernetes cluster/.test(e.message),
    );
    assert.throws(
      () => plan(task({ affinity: {} })),
      (e: unknown) =>
        e instanceof ColonyError && /affinity schedules Kubernetes pods/.test(e.message),
    );
  });

  it("puts a script longer than one exec argument in a file, as a valid tar archive", () => {
    const long = `echo ${"x".repeat(70 * 1024)}`;
    const p = plan(task({}, [long]));
    assert.deepEqual(p.body.Cmd, [`. ${SCRIPT_PATH}`]);
    assert.ok(p.scriptFile?.includes(long));
    const dir = mkdtempSync(join(tmpdir(), "colony-tar-"));
    try {
      const file = join(dir, "a.tar");
      writeFileSync(file, tarOneFile(SCRIPT_PATH, p.scriptFile!));
      assert.equal(
        execFileSync("tar", ["-xOf", file, ".colony-script.sh"], { maxBuffer: 1 << 22 }).toString(),
        p.scriptFile,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs the image's own command when the task has no script", () => {
    const p = plan(
      task({ container: { image: "busybox", image_definition: { command: ["echo", "x"] } } }, []),
    );
    assert.equal(p.body.Entrypoint, undefined);
    assert.deepEqual(p.body.Cmd, ["echo", "x"]);
  });

  it("parses quantities the way Kubernetes and Docker users write them", () => {
    assert.deepEqual(
      [parseCpu("500m"), parseCpu("1.5"), parseCpu(2), parseCpu("x")],
      [0.5, 1.5, 2, undefined],
    );
    assert.deepEqual(
      [
        parseMemory("1Gi"),
        parseMemory("1G"),
        parseMemory("512m"),
        parseMemory("100"),
        parseMemory("1Q"),
      ],
      [2 ** 30, 1e9, 512 * 2 ** 20, 100, undefined],
    );
  });

  it("refuses unknown keys in the config and in the task, naming them", () => {
    assert.throws(
      () => validateConfigFile({ docker: { registry: { pasword: "x" } } }),
      (e: unknown) =>
        e instanceof ConfigError && /unknown key 'docker\.registry\.pasword'/.test(e.message),
    );
    assert.throws(
      () => validateConfigFile({ docker: { pull_policy: "sometimes" } }),
      (e: unknown) => e instanceof ConfigError && /docker\.pull_policy/.test(e.message),
    );
    assert.throws(
      () => taskContainerOptions(task({ container: { image: "busybox", cpu_limt: 1 } })),
      (e: unknown) =>
        e instanceof ColonyError && /unknown key 'container\.cpu_limt'/.test(e.message),
    );
  });
});

describe("docker host addresses", () => {
  it("takes unix sockets, tcp:// and http:// URLs, and the seed's bare host name", async () => {
    const { dockerTarget } = await import("../src/executors/docker/docker-api.ts");
    const at = (host: string | undefined, env: NodeJS.ProcessEnv = {}) =>
      dockerTarget({ host, env });
    assert.deepEqual(at(undefined), {
      socketPath: "/var/run/docker.sock",
      describe: "unix:///var/run/docker.sock",
    });
    // Without docker.host, DOCKER_HOST (rootless Docker's socket, say); docker.host wins.
    const rootless = { DOCKER_HOST: "unix:///run/user/1000/docker.sock" };
    assert.deepEqual(at(undefined, rootless), {
      socketPath: "/run/user/1000/docker.sock",
      describe: "unix:///run/user/1000/docker.sock",
    });
    assert.equal(at("tcp://engine:2375", rootless).describe, "tcp://engine:2375");
    assert.deepEqual(at("/run/d.sock"), {
      socketPath: "/run/d.sock",
      describe: "unix:///run/d.sock",
    });
    assert.deepEqual(at("tcp://10.0.0.5:2376"), {
      hostname: "10.0.0.5",
      port: 2376,
      describe: "tcp://10.0.0.5:2376",
    });
    assert.deepEqual(at("kubernetes-host"), {
      hostname: "kubernetes-host",
      port: 2375,
      describe: "tcp://kubernetes-host",
    });
    assert.throws(() => at("ssh://user@host"), /not supported/);
  });

  it("decides TLS as the Docker CLI does: config keys, else DOCKER_TLS_VERIFY / DOCKER_TLS, else https://", async () => {
    const { dockerTarget } = await import("../src/executors/docker/docker-api.ts");
    const dir = mkdtempSync(join(tmpdir(), "colony-docker-tls-"));
    try {
      for (const name of ["ca.pem", "cert.pem", "key.pem"]) {
        writeFileSync(join(dir, name), `${name} bytes`);
      }
      const pem = (name: string) => Buffer.from(`${name} bytes`);
      // The config's keys: verified by default, port 2376 when none is written.
      const configured = dockerTarget({
        host: "tcp://engine",
        ca_file: join(dir, "ca.pem"),
        cert_file: join(dir, "cert.pem"),
        key_file: join(dir, "key.pem"),
        env: {},
      });
      assert.equal(configured.port, 2376);
      assert.deepEqual(configured.tls, {
        rejectUnauthorized: true,
        ca: pem("ca.pem"),
        cert: pem("cert.pem"),
        key: pem("key.pem"),
      });
      assert.deepEqual(dockerTarget({ host: "tcp://e:2376", tls_verify: false, env: {} }).tls, {
        rejectUnauthorized: false,
      });
      // The environment, when the config sets none: the files present in DOCKER_CERT_PATH.
      const env = {
        DOCKER_HOST: "tcp://engine:2376",
        DOCKER_TLS_VERIFY: "1",
        DOCKER_CERT_PATH: dir,
      };
      assert.deepEqual(dockerTarget({ env }).tls, {
        rejectUnauthorized: true,
        ca: pem("ca.pem"),
        cert: pem("cert.pem"),
        key: pem("key.pem"),
      });
      rmSync(join(dir, "ca.pem"));
      const tlsOnly = { DOCKER_HOST: "tcp://engine:2376", DOCKER_TLS: "1", DOCKER_CERT_PATH: dir };
      assert.deepEqual(dockerTarget({ env: tlsOnly }).tls, {
        rejectUnauthorized: false,
        cert: pem("cert.pem"),
        key: pem("key.pem"),
      });
      // The config's keys win over the environment's.
      assert.deepEqual(dockerTarget({ tls_verify: true, env }).tls, { rejectUnauthorized: true });
      // https:// alone is TLS with the system's CAs; a socket ignores a leftover DOCKER_TLS_VERIFY.
      assert.deepEqual(dockerTarget({ host: "https://engine", env: {} }), {
        hostname: "engine",
        port: 2376,
        describe: "https://engine",
        https: true,
        tls: { rejectUnauthorized: true },
      });
      assert.equal(dockerTarget({ host: "unix:///run/d.sock", env }).tls, undefined);
      assert.equal(dockerTarget({ host: "tcp://engine:2375", env: {} }).tls, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses TLS settings it cannot use, naming the key and what to do", async () => {
    const { dockerTarget } = await import("../src/executors/docker/docker-api.ts");
    const refused = (options: Record<string, unknown>, pattern: RegExp) =>
      assert.throws(
        () => dockerTarget({ host: "tcp://engine", env: {}, ...options }),
        (e: unknown) =>
          e instanceof ColonyError && e.code === "COLONY_DOCKER_TLS" && pattern.test(e.message),
      );
    refused(
      { ca_file: "/nonexistent/ca.pem" },
      /cannot read docker\.ca_file '\/nonexistent\/ca\.pem' \(ENOENT\)/,
    );
    refused({ cert_file: "/x/cert.pem" }, /cert_file and docker\.key_file go together/);
    refused({ host: "/run/d.sock", tls_verify: true }, /apply to a TCP engine.*tcp:\/\/host:2376/);
    // Files absent from DOCKER_CERT_PATH are left out, as the Docker CLI does.
    const env = { DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: "/nonexistent" };
    assert.deepEqual(dockerTarget({ host: "tcp://engine", env }).tls, { rejectUnauthorized: true });
  });
});
