/**
 * The DOCKER executor reaching a real Docker engine over TCP and over mutual TLS, with
 * certificates the test makes with openssl. The engine (scripts/test-docker.sh) listens
 * on its Unix socket; the test puts real endpoints in front of it on loopback, bytes
 * passed through unchanged (so the engine's own answers and its attach stream, which a
 * task's stdin takes, reach colony):
 * - TLS: `socat OPENSSL-LISTEN` with the test CA, a server certificate for 127.0.0.1 and
 *   client certificates required and verified by OpenSSL (`verify=1`), as `dockerd
 *   --tlsverify` requires them (a client certificate refused gets a TLS alert);
 * - plain TCP: a node:net pass-through;
 * - one answer of dockerd's TLS port, reproduced: to a request in plain HTTP, Go's
 *   net/http (which dockerd serves) answers `400 Client sent an HTTP request to an HTTPS
 *   server.`; a small listener gives exactly that answer.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ColonyError } from "../src/core/errors.ts";
import type { ExecutionRequest } from "../src/core/executor.ts";
import { taskDefinition } from "../src/core/job-definition.ts";
import { createDockerApi, type DockerApiOptions } from "../src/executors/docker/docker-api.ts";
import { createDockerExecutor } from "../src/executors/docker/docker-executor.ts";
import { readAll } from "../src/executors/executor-conformance.ts";
import { tempDir } from "./support/cli.ts";
import { CI, docker } from "./support/services.ts";
import { makeTestCerts, type TestCerts } from "./support/tls-certs.ts";

const service = await docker();
const hasSocat = spawnSync("socat", ["-V"], { stdio: "ignore" }).status === 0;
if (service.url && !hasSocat && CI) {
  throw new Error("CI=true but socat is missing (scripts/test-docker.sh installs it)");
}
const skip = !service.url
  ? service.reason
  : !hasSocat
    ? "socat is missing (scripts/test-docker.sh installs it): it serves the engine over TLS"
    : false;
const OWNER = `colony-tls-test-${randomBytes(4).toString("hex")}`;

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)),
  );
}

/** A plain TCP endpoint of the engine's Unix socket. */
async function plainEndpoint(engineSocket: string): Promise<{ port: number; server: Server }> {
  const server = createServer((client: Socket) => {
    const engine = connect(engineSocket);
    client.pipe(engine).pipe(client);
    const close = () => {
      client.destroy();
      engine.destroy();
    };
    client.on("error", close);
    engine.on("error", close);
  });
  return { port: await listen(server), server };
}

/** What dockerd's TLS port answers to plain HTTP (Go's net/http). */
async function goTlsPortAnswer(): Promise<{ port: number; server: Server }> {
  const server = createServer((client) => {
    client.once("data", () =>
      client.end(
        "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
      ),
    );
    client.on("error", () => undefined);
  });
  return { port: await listen(server), server };
}

/** The engine over mutual TLS, served by socat (OpenSSL verifies client certificates). */
async function tlsEndpoint(
  engineSocket: string,
  certs: TestCerts,
): Promise<{ port: number; socat: ChildProcess }> {
  // socat takes a fixed port: one the kernel just gave out, freed again.
  const probe = createServer();
  const port = await listen(probe);
  await new Promise((resolve) => probe.close(resolve));
  const socat = spawn(
    "socat",
    [
      `OPENSSL-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,cert=${certs.serverCert},key=${certs.serverKey},cafile=${certs.caCert},verify=1`,
      `UNIX-CONNECT:${engineSocket}`,
    ],
    { stdio: "ignore" },
  );
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (up) return { port, socat };
    await new Promise((r) => setTimeout(r, 50));
  }
  socat.kill();
  throw new Error(`socat did not listen on 127.0.0.1:${port}`);
}

function request(root: string, id: string, script: string[], stdin?: string): ExecutionRequest {
  return {
    executionId: id,
    method: "DOCKER",
    task: taskDefinition("t", {
      method: "DOCKER",
      script,
      executorOptions: { container: { image: service.image } },
    }),
    env: {},
    variables: {},
    unitDir: join(root, "units", id),
    jobType: "docker-tls-test",
    ...(stdin === undefined ? {} : { stdinPath: stdin }),
  };
}

async function containersOfThisRun(): Promise<unknown[]> {
  const api = createDockerApi({ host: service.url });
  try {
    return await api.call<unknown[]>("GET", "/containers/json", {
      query: { all: true, filters: JSON.stringify({ label: [`colony.owner=${OWNER}`] }) },
    });
  } finally {
    api.close();
  }
}

describe("docker engine over TCP and mutual TLS (real engine)", { skip }, () => {
  const dir = tempDir("colony-docker-tls-");
  let certs: TestCerts;
  let plain: { port: number; server: Server };
  let goAnswer: { port: number; server: Server };
  let secure: { port: number; socat: ChildProcess };
  let client: { cert: string; key: string };
  before(async () => {
    certs = makeTestCerts(dir.path);
    client = certs.client("colony-ant");
    plain = await plainEndpoint(service.url!);
    goAnswer = await goTlsPortAnswer();
    secure = await tlsEndpoint(service.url!, certs);
  });
  after(async () => {
    plain?.server.close();
    goAnswer?.server.close();
    secure?.socat.kill();
    dir.remove();
  });

  /** The options of the TLS endpoint with the test's client certificate. */
  const mutual = (): DockerApiOptions => ({
    host: `tcp://127.0.0.1:${secure.port}`,
    ca_file: certs.caCert,
    cert_file: client.cert,
    key_file: client.key,
    env: {},
  });

  /** What a call to the engine with these options rejects with. */
  async function failure(options: DockerApiOptions): Promise<ColonyError> {
    const api = createDockerApi(options);
    try {
      const error = await api.call("GET", "/_ping").then(
        () => assert.fail("the call went through"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ColonyError, String(error));
      return error;
    } finally {
      api.close();
    }
  }

  it("runs a task with stdin and output on an engine reached over mutual TLS (docker.ca_file, cert_file, key_file)", async () => {
    const executor = createDockerExecutor({ config: mutual(), owner: OWNER, reapIntervalMs: 0 });
    try {
      assert.equal(await executor.isInstalled(), true);
      const root = join(dir.path, "run");
      mkdirSync(root, { recursive: true });
      const stdin = join(root, "stdin");
      const payload = `payload ${randomBytes(8).toString("hex")}\n`;
      writeFileSync(stdin, payload);
      const req = request(root, "tlsrun01", ["echo over tls", "cat"], stdin);
      const result = await executor.run(req);
      assert.equal(result.exitCode, 0);
      const output = await readAll(
        await executor.logStream({ executionId: req.executionId, follow: false }),
      );
      assert.equal(output, `over tls\n${payload}`);
    } finally {
      await executor.close();
    }
  });

  it("takes DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as the docker CLI does", async () => {
    const certPath = join(dir.path, "docker-cert-path");
    mkdirSync(certPath, { recursive: true });
    copyFileSync(certs.caCert, join(certPath, "ca.pem"));
    copyFileSync(client.cert, join(certPath, "cert.pem"));
    copyFileSync(client.key, join(certPath, "key.pem"));
    const api = createDockerApi({
      env: {
        DOCKER_HOST: `tcp://127.0.0.1:${secure.port}`,
        DOCKER_TLS_VERIFY: "1",
        DOCKER_CERT_PATH: certPath,
      },
    });
    try {
      assert.equal(String(await api.call("GET", "/_ping")).trim(), "OK");
      const version = await api.call<{ ApiVersion?: string }>("GET", "/version");
      assert.match(String(version.ApiVersion), /^1\.\d+$/);
    } finally {
      api.close();
    }
  });

  it("reaches a plain TCP engine (tcp://host:port, no TLS keys)", async () => {
    const api = createDockerApi({ host: `tcp://127.0.0.1:${plain.port}`, env: {} });
    try {
      assert.equal(String(await api.call("GET", "/_ping")).trim(), "OK");
    } finally {
      api.close();
    }
  });

  it("says the engine refused colony's client certificate when it has none, or one of another CA", async () => {
    const none = await failure({ ...mutual(), cert_file: undefined, key_file: undefined });
    assert.equal(none.code, "COLONY_DOCKER_TLS");
    assert.match(
      none.message,
      /refused colony's client certificate.*docker\.cert_file and docker\.key_file/,
    );
    const foreign = certs.foreignClient("intruder");
    const other = await failure({ ...mutual(), cert_file: foreign.cert, key_file: foreign.key });
    assert.equal(other.code, "COLONY_DOCKER_TLS");
    assert.match(other.message, /refused colony's client certificate/);
  });

  it("says colony does not trust the engine's certificate without its CA, and what to set", async () => {
    const e = await failure({ ...mutual(), ca_file: undefined });
    assert.equal(e.code, "COLONY_DOCKER_TLS");
    assert.match(e.message, /does not trust the Docker engine at tcp:\/\/127\.0\.0\.1:\d+/);
    assert.match(e.message, /docker\.ca_file/);
  });

  it("says the engine speaks TLS when colony talks plain HTTP to it, and TLS to a plain port fails clearly", async () => {
    const plainToTls = await failure({ host: `tcp://127.0.0.1:${goAnswer.port}`, env: {} });
    assert.equal(plainToTls.code, "COLONY_DOCKER_TLS");
    assert.match(plainToTls.message, /speaks TLS.*docker\.tls_verify/);
    const tlsToPlain = await failure({ ...mutual(), host: `tcp://127.0.0.1:${plain.port}` });
    assert.equal(tlsToPlain.code, "COLONY_DOCKER_TLS");
    assert.match(tlsToPlain.message, /does not speak TLS there.*2376 is TLS, 2375 plain/);
  });

  it("fails a task at once on a TLS problem and creates nothing", async () => {
    const executor = createDockerExecutor({
      config: { ...mutual(), cert_file: undefined, key_file: undefined },
      owner: OWNER,
      reapIntervalMs: 0,
    });
    try {
      const root = join(dir.path, "refused");
      const error = await executor.start(request(root, "tlsfail1", ["echo never"])).then(
        () => assert.fail("started"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ColonyError);
      assert.equal(error.code, "COLONY_DOCKER_TLS");
      assert.equal(error.retryable, false, "a retry cannot fix the configuration");
    } finally {
      await executor.close();
    }
    assert.deepEqual(
      (await containersOfThisRun()).filter((c) => JSON.stringify(c).includes("tlsfail1")),
      [],
    );
  });

  it("leaves no container behind", async () => {
    assert.deepEqual(await containersOfThisRun(), []);
  });
});
