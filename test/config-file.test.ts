/**
 * colony.yaml errors name the file, the line and the column of the key at fault (they
 * named only the file), as job definitions do; the server refuses to start with them.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError, loadConfig, readConfigFile, readHttpTls } from "../src/config/config.ts";
import { makeTestCerts } from "./support/tls-certs.ts";
import { runCli, tempDir } from "./support/cli.ts";

describe("colony.yaml errors", () => {
  const dir = tempDir("colony-config-");
  after(() => dir.remove());
  let n = 0;
  const config = (text: string) => {
    const path = join(dir.path, `colony${++n}.yaml`);
    writeFileSync(path, text);
    return path;
  };
  const refused = (path: string, message: string) =>
    assert.throws(
      () => readConfigFile(path),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.message, `${path}:${message}`);
        return true;
      },
    );

  it("point at the key: unknown keys, nested ones, wrong types, array items", () => {
    refused(
      config("port: 7777\nserver:\n  port: 1\n"),
      "2:1: unknown key 'server'; known keys: node_id, data_dir, host, port, base_url, advertise_url, store, control_socket, max_parallel_tasks, kill_grace, shutdown_grace, body_limit, auth, tls, jobs_api, messaging, ant, work_types, peers, work_signing, work_verification, units, hook, artifacts, schedules, http, docker, kubernetes",
    );
    refused(config("ant:\n  ping_interval: 5s\n  pnig: 1\n"), "3:3: unknown key 'ant.pnig'");
    refused(config("host: 127.0.0.1\nport: seven\n"), "2:1: port must be integer");
    refused(
      config("node_id: a\npeers:\n  - node_id: b\n    url: tcp://127.0.0.1:1\n  - url: x\n"),
      "5:5: peers[1] must have required properties node_id",
    );
  });

  it("docker: TLS keys, their files relative to colony.yaml, a boolean tls_verify", () => {
    const path = config(
      "docker:\n  host: tcp://build-host:2376\n  tls_verify: true\n  ca_file: certs/ca.pem\n" +
        "  cert_file: /etc/colony/cert.pem\n  key_file: certs/key.pem\n",
    );
    const docker = loadConfig({ file: path, env: {}, overrides: { dataDir: dir.path } }).docker;
    assert.deepEqual(
      { ...docker },
      {
        host: "tcp://build-host:2376",
        tls_verify: true,
        ca_file: join(dir.path, "certs/ca.pem"),
        cert_file: "/etc/colony/cert.pem",
        key_file: join(dir.path, "certs/key.pem"),
      },
    );
    refused(
      config("docker:\n  tls_verify: yes please\n"),
      "2:3: docker.tls_verify must be boolean",
    );
    refused(config("docker:\n  tls: true\n"), "2:3: unknown key 'docker.tls'");
  });

  it("http: TLS files of HTTP tasks, relative to colony.yaml, read and checked at start", () => {
    mkdirSync(join(dir.path, "http-certs"));
    const certs = makeTestCerts(join(dir.path, "http-certs"));
    const client = certs.client("colony-tasks");
    const path = config(
      `http:\n  ca_file: http-certs/test-ca.pem\n  cert_file: ${client.cert}\n  key_file: ${client.key}\n`,
    );
    const http = loadConfig({ file: path, env: {}, overrides: { dataDir: dir.path } }).http;
    assert.deepEqual(
      { ...http },
      { caFile: certs.caCert, certFile: client.cert, keyFile: client.key },
    );
    assert.deepEqual(readHttpTls(http), {
      ca: readFileSync(certs.caCert, "utf8"),
      cert: readFileSync(client.cert, "utf8"),
      key: readFileSync(client.key, "utf8"),
    });
    assert.equal(readHttpTls({}), undefined, "no http: no TLS options");
    const load = (text: string) =>
      loadConfig({ file: config(text), env: {}, overrides: { dataDir: dir.path } });
    assert.throws(
      () => load(`http:\n  cert_file: ${client.cert}\n`),
      /^ConfigError: http: set both cert_file and key_file .*, or neither$/,
    );
    refused(config("http:\n  ca: x.pem\n"), "2:3: unknown key 'http.ca'");
    const missing = join(dir.path, "nowhere.pem");
    assert.throws(
      () => readHttpTls(load(`http:\n  ca_file: ${missing}\n`).http),
      new RegExp(`^ConfigError: http\\.ca_file: cannot read ${missing}: ENOENT; fix the path`),
    );
    // A key that is not the certificate's: refused at start, not at every https task.
    const other = certs.client("someone-else");
    assert.throws(
      () =>
        readHttpTls(load(`http:\n  cert_file: ${client.cert}\n  key_file: ${other.key}\n`).http),
      /^ConfigError: http: the TLS files cannot be used \(.*\): .*key values mismatch.*; give PEM files, the key being the certificate's$/,
    );
    const notPem = config("not a certificate\n");
    assert.throws(
      () => readHttpTls(load(`http:\n  ca_file: ${notPem}\n`).http),
      /^ConfigError: http\.ca_file: .* holds no PEM certificate/,
    );
    assert.throws(
      () => readHttpTls(load(`http:\n  cert_file: ${notPem}\n  key_file: ${client.key}\n`).http),
      /^ConfigError: http: the TLS files cannot be used/,
    );
  });

  it("base_url and advertise_url must be http(s) URLs; a trailing slash is dropped", () => {
    const load = (yaml: string) =>
      loadConfig({ file: config(yaml), overrides: { dataDir: dir.path } });
    assert.throws(() => load("advertise_url: colony-a.internal:7777\n"), {
      message:
        "advertise_url: 'colony-a.internal:7777' is not an http(s) URL; write e.g. https://colony.example.com",
    });
    assert.throws(() => load("base_url: /colony\n"), {
      message: /^base_url: '\/colony' is not an http\(s\) URL/,
    });
    assert.throws(
      () =>
        loadConfig({
          env: { COLONY_ADVERTISE_URL: "10.0.0.7:7777" },
          overrides: { dataDir: dir.path },
        }),
      { message: /^COLONY_ADVERTISE_URL: '10\.0\.0\.7:7777' is not an http\(s\) URL/ },
    );
    const ok = load("base_url: https://colony.example.com/\nadvertise_url: http://10.0.0.7:7777\n");
    assert.equal(ok.baseUrl, "https://colony.example.com");
    assert.equal(ok.advertiseUrl, "http://10.0.0.7:7777");
  });

  it("an empty environment variable counts as unset: the file's value holds", () => {
    const yaml =
      "host: 10.0.0.5\nport: 7788\nnode_id: bar\nbase_url: https://colony.example.com\nmessaging:\n  redis_url: redis://10.0.0.9:6379\n";
    const empty = {
      COLONY_HOST: "",
      COLONY_PORT: "",
      COLONY_NODE_ID: "",
      COLONY_BASE_URL: "",
      COLONY_STORE_URL: "",
      COLONY_REDIS_URL: "",
    };
    const c = loadConfig({ file: config(yaml), env: empty, overrides: { dataDir: dir.path } });
    assert.deepEqual(
      [c.host, c.port, c.nodeId, c.baseUrl, c.storeUrl, c.messaging.redisUrl],
      ["10.0.0.5", 7788, "bar", "https://colony.example.com", undefined, "redis://10.0.0.9:6379"],
    );
  });

  it("colony server refuses to start with one, exit 2", async () => {
    const path = config("port: 7777\nstoer: sqlite\n");
    const r = await runCli(["server", "--config", path, "--data-dir", join(dir.path, "data")]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^colony server: ${path}:2:1: unknown key 'stoer'`));
  });
});
