/**
 * A small fake Kubernetes API server for the KUBERNETES executor's lifecycle tests (no
 * cluster can run on the CI machine). It implements just the endpoints colony uses,
 * with the JSON shapes of the real API (Pod, PodList, Secret, watch events, Status
 * errors) and the behaviour colony relies on:
 *
 * - POST pods validates the body against the official schema (strict unknown-field
 *   check when ?fieldValidation=Strict), answers 409 AlreadyExists for a taken name.
 * - a simulated kubelet moves the pod Pending -> Running, and RUNS the main container's
 *   command (`/bin/sh -c <script>`) as a local process group with the container's env,
 *   so logs and exit codes are real; service containers only show as running. An image
 *   named `*pull-fails*` stays Waiting with ErrImagePull.
 * - GET pods/{name}, GET pods?labelSelector&fieldSelector (and ?watch=true: newline-
 *   delimited ADDED/MODIFIED/DELETED events from a resourceVersion), GET
 *   pods/{name}/log (?follow=true streams until the container ends; 400 while it waits).
 * - DELETE pods/{name}: marks deletionTimestamp, sends SIGTERM, SIGKILL after the grace
 *   period, records the terminated status, then removes the pod (DELETED event).
 * - secrets: create, list by label, delete.
 * - a bearer token, when configured, is required on every call.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { readFileSync } from "node:fs";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { TLSSocket } from "node:tls";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { podProblems } from "./kube-schema.ts";

type Json = Record<string, unknown>;
interface Pod extends Json {
  metadata: Json & {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    resourceVersion?: string;
  };
  spec: Json & {
    containers: (Json & {
      name: string;
      image: string;
      command?: string[];
      args?: string[];
      env?: { name: string; value?: string }[];
      workingDir?: string;
    })[];
    terminationGracePeriodSeconds?: number;
  };
  status: Json & { phase: string; containerStatuses?: ContainerStatus[] };
}
interface ContainerStatus extends Json {
  name: string;
  state: Json;
}
interface RunState {
  pod: Pod;
  proc?: ChildProcess;
  log: Buffer[];
  logDone: boolean;
  logWaiters: Set<() => void>;
  deleting: boolean;
  killTimer?: NodeJS.Timeout;
  timers: NodeJS.Timeout[];
}

export interface FakeKubeApi {
  url: string;
  token: string | undefined;
  /** Every request: method, path with query, and the Authorization header it carried. */
  requests: { method: string; url: string; authorization?: string; body?: string }[];
  pods(): Pod[];
  secrets(): Json[];
  /** Live processes of running main containers (pids). */
  processes(): number[];
  /** Pretends this API server went away and came back: ends every open watch and log stream. */
  dropStreams(): void;
  close(): Promise<void>;
}

const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

function status(code: number, reason: string, message: string, details?: Json): Json {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

function matches(labels: Record<string, string> | undefined, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(",").every((term) => {
    const t = term.trim();
    if (!t) return true;
    const ne = /^([^!=]+)!=(.*)$/.exec(t);
    if (ne) return labels?.[ne[1]!] !== ne[2];
    const eq = /^([^=]+)==?(.*)$/.exec(t);
    if (eq) return labels?.[eq[1]!] === eq[2];
    return labels?.[t] !== undefined;
  });
}

export interface FakeKubeApiOptions {
  /** HTTPS server certificate and key (files); the API server is HTTPS, as a real one is. */
  cert: string;
  key: string;
  /** When set, client certificates signed by this CA authenticate too (cert_file/key_file). */
  clientCa?: string;
  /** When set, a request needs `Authorization: Bearer <token>` (or a client certificate). */
  token?: string;
  startDelayMs?: number;
}

export async function startFakeKubeApi(options: FakeKubeApiOptions): Promise<FakeKubeApi> {
  const token = options.token;
  const startDelayMs = options.startDelayMs ?? 20;
  let rv = 1000;
  const runs = new Map<string, RunState>(); // ns/name
  const secrets = new Map<string, Json>();
  const events: { rv: number; type: string; object: Pod }[] = [];
  const watchers = new Set<{
    ns: string;
    field: string | null;
    label: string | null;
    res: ServerResponse;
  }>();
  const openStreams = new Set<ServerResponse>();
  const requests: FakeKubeApi["requests"] = [];

  const key = (ns: string, name: string) => `${ns}/${name}`;

  function emit(type: string, pod: Pod): void {
    rv++;
    pod.metadata.resourceVersion = String(rv);
    const snapshot = structuredClone(pod);
    events.push({ rv, type, object: snapshot });
    for (const w of watchers) {
      if (w.ns === pod.metadata.namespace && matchesPod(snapshot, w.field, w.label)) {
        w.res.write(`${JSON.stringify({ type, object: snapshot })}\n`);
      }
    }
  }

  function matchesPod(pod: Pod, field: string | null, label: string | null): boolean {
    if (field) {
      const m = /^metadata\.name=(.*)$/.exec(field);
      if (m && pod.metadata.name !== m[1]) return false;
    }
    return matches(pod.metadata.labels, label);
  }

  function send(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  }

  function setContainer(run: RunState, name: string, state: Json, extra: Json = {}): void {
    const list = (run.pod.status.containerStatuses ??= run.pod.spec.containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: "",
      ready: false,
      started: false,
      restartCount: 0,
      state: { waiting: { reason: "ContainerCreating" } },
    })));
    const cs = list.find((c) => c.name === name)!;
    cs.state = state;
    Object.assign(cs, extra);
  }

  function wakeLogs(run: RunState): void {
    for (const w of run.logWaiters) w();
  }

  function terminated(exitCode: number, startedAt: string): Json {
    return {
      terminated: {
        exitCode,
        reason: exitCode === 0 ? "Completed" : "Error",
        startedAt,
        finishedAt: now(),
        containerID: `containerd://${randomUUID().replace(/-/g, "")}`,
      },
    };
  }

  /** After every container has terminated: the phase; with a delete pending, the DELETED event. */
  function settle(run: RunState): void {
    const all = run.pod.status.containerStatuses ?? [];
    if (all.length > 0 && all.every((c) => "terminated" in c.state)) {
      const main = all[0]!;
      const code = (main.state["terminated"] as { exitCode: number }).exitCode;
      run.pod.status.phase = code === 0 ? "Succeeded" : "Failed";
    }
    emit("MODIFIED", run.pod);
    if (run.deleting && all.every((c) => "terminated" in c.state)) {
      clearTimeout(run.killTimer);
      runs.delete(key(run.pod.metadata.namespace, run.pod.metadata.name));
      emit("DELETED", run.pod);
    }
  }

  function kubelet(run: RunState): void {
    const pod = run.pod;
    run.timers.push(
      setTimeout(() => {
        if (run.deleting) return;
        pod.status.conditions = [
          { type: "PodScheduled", status: "True", lastTransitionTime: now() },
        ];
        pod.spec["nodeName"] = "fake-node";
        const main = pod.spec.containers[0]!;
        if (/pull-fails/.test(main.image)) {
          setContainer(run, main.name, {
            waiting: {
              reason: "ErrImagePull",
              message: `rpc error: code = Unknown desc = failed to pull and unpack image "${main.image}": pull access denied`,
            },
          });
          emit("MODIFIED", pod);
          return;
        }
        const startedAt = now();
        pod.status.phase = "Running";
        pod.status["startTime"] = startedAt;
        pod.status["podIP"] = "10.0.0.7";
        for (const c of pod.spec.containers) {
          setContainer(
            run,
            c.name,
            { running: { startedAt } },
            {
              ready: true,
              started: true,
              containerID: `containerd://${randomUUID().replace(/-/g, "")}`,
            },
          );
        }
        const argv = [...(main.command ?? []), ...(main.args ?? [])];
        const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
        for (const e of main.env ?? []) env[e.name] = e.value ?? "";
        const cwd = main.workingDir && existsSync(main.workingDir) ? main.workingDir : tmpdir();
        const proc = spawn(argv[0] ?? "/bin/true", argv.slice(1), {
          env,
          cwd,
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
        });
        run.proc = proc;
        const onData = (b: Buffer) => {
          run.log.push(b);
          wakeLogs(run);
        };
        proc.stdout!.on("data", onData);
        proc.stderr!.on("data", onData);
        proc.on("close", (code, signal) => {
          run.proc = undefined;
          run.logDone = true;
          wakeLogs(run);
          const exit = code ?? 128 + (signal === "SIGKILL" ? 9 : 15);
          setContainer(run, main.name, terminated(exit, startedAt), {
            ready: false,
            started: false,
          });
          settle(run);
        });
        emit("MODIFIED", pod);
      }, startDelayMs),
    );
  }

  async function body(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  async function createPod(
    ns: string,
    req: IncomingMessage,
    res: ServerResponse,
    text: string,
    url: URL,
  ) {
    let pod: Pod;
    try {
      pod = JSON.parse(text) as Pod;
    } catch {
      return send(res, 400, status(400, "BadRequest", "the request body is not JSON"));
    }
    const problems = await podProblems(pod);
    const unknownFields = problems.filter((p) => p.includes("unknown field"));
    if (url.searchParams.get("fieldValidation") === "Strict" && unknownFields.length > 0) {
      return send(
        res,
        400,
        status(400, "BadRequest", `strict decoding error: ${unknownFields.join(", ")}`),
      );
    }
    const invalid = problems.filter((p) => p.startsWith("schema:"));
    if (invalid.length > 0 || !pod.metadata?.name || !pod.spec?.containers?.length) {
      return send(
        res,
        422,
        status(
          422,
          "Invalid",
          `Pod "${pod.metadata?.name}" is invalid: ${invalid.join("; ") || "name and containers are required"}`,
          { name: pod.metadata?.name, kind: "pods" },
        ),
      );
    }
    const name = pod.metadata.name;
    if (runs.has(key(ns, name))) {
      return send(
        res,
        409,
        status(409, "AlreadyExists", `pods "${name}" already exists`, { name, kind: "pods" }),
      );
    }
    pod.metadata = { ...pod.metadata, namespace: ns, uid: randomUUID(), creationTimestamp: now() };
    pod.status = { phase: "Pending", qosClass: "BestEffort" };
    const run: RunState = {
      pod,
      log: [],
      logDone: false,
      logWaiters: new Set(),
      deleting: false,
      timers: [],
    };
    runs.set(key(ns, name), run);
    emit("ADDED", pod);
    kubelet(run);
    send(res, 201, pod);
  }

  function deletePod(run: RunState, grace: number, res: ServerResponse) {
    const pod = run.pod;
    if (!run.deleting) {
      run.deleting = true;
      pod.metadata["deletionTimestamp"] = now();
      pod.metadata["deletionGracePeriodSeconds"] = grace;
      for (const t of run.timers) clearTimeout(t);
      const signal = (sig: NodeJS.Signals) => {
        if (run.proc?.pid) {
          try {
            process.kill(-run.proc.pid, sig);
          } catch {
            // already gone
          }
        }
      };
      // Simulated service containers (and a main container that never started) end at once.
      const startedAt = (pod.status["startTime"] as string | undefined) ?? now();
      for (const [i, c] of pod.spec.containers.entries()) {
        if (i === 0 && run.proc) continue;
        const cs = pod.status.containerStatuses?.find((s) => s.name === c.name);
        if (!cs || !("terminated" in cs.state))
          setContainer(run, c.name, terminated(i === 0 ? 137 : 143, startedAt), { ready: false });
      }
      if (run.proc) {
        signal(grace === 0 ? "SIGKILL" : "SIGTERM");
        run.killTimer = setTimeout(() => signal("SIGKILL"), grace * 1000);
      }
      run.logDone = run.logDone || !run.proc;
      wakeLogs(run);
      send(res, 200, pod);
      settle(run);
      return;
    }
    send(res, 200, pod);
  }

  function streamLog(run: RunState, container: string, follow: boolean, res: ServerResponse) {
    const cs = run.pod.status.containerStatuses?.find((c) => c.name === container);
    const main = run.pod.spec.containers[0]!.name;
    if (!cs || "waiting" in cs.state) {
      const reason =
        (cs?.state["waiting"] as { reason?: string } | undefined)?.reason ?? "ContainerCreating";
      return send(
        res,
        400,
        status(
          400,
          "BadRequest",
          `container "${container}" in pod "${run.pod.metadata.name}" is waiting to start: ${reason}`,
        ),
      );
    }
    res.writeHead(200, { "content-type": "text/plain", "transfer-encoding": "chunked" });
    if (container !== main) return res.end(); // simulated services print nothing
    let sent = 0;
    const pump = () => {
      while (sent < run.log.length) res.write(run.log[sent++]);
      if (!follow || run.logDone) {
        run.logWaiters.delete(pump);
        openStreams.delete(res);
        res.end();
      }
    };
    openStreams.add(res);
    res.on("close", () => {
      run.logWaiters.delete(pump);
      openStreams.delete(res);
    });
    run.logWaiters.add(pump);
    pump();
  }

  const server: Server = createServer(
    {
      cert: readFileSync(options.cert),
      key: readFileSync(options.key),
      ...(options.clientCa
        ? { ca: readFileSync(options.clientCa), requestCert: true, rejectUnauthorized: false }
        : {}),
    },
    (req, res) => {
      void (async () => {
        const url = new URL(req.url ?? "/", "http://fake");
        const text = req.method === "POST" || req.method === "DELETE" ? await body(req) : undefined;
        requests.push({
          method: req.method ?? "",
          url: url.pathname + url.search,
          ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
          ...(text ? { body: text } : {}),
        });
        const byCert = options.clientCa !== undefined && (req.socket as TLSSocket).authorized;
        const byToken = token !== undefined && req.headers.authorization === `Bearer ${token}`;
        if ((token !== undefined || options.clientCa !== undefined) && !byCert && !byToken) {
          return send(res, 401, status(401, "Unauthorized", "Unauthorized"));
        }
        if (url.pathname === "/version") {
          return send(res, 200, {
            major: "1",
            minor: "33",
            gitVersion: "v1.33.0-fake",
            platform: "linux/amd64",
          });
        }
        let m = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname);
        if (m) {
          const ns = decodeURIComponent(m[1]!);
          if (req.method === "POST") return createPod(ns, req, res, text ?? "", url);
          const field = url.searchParams.get("fieldSelector");
          const label = url.searchParams.get("labelSelector");
          if (url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1") {
            const from = Number(url.searchParams.get("resourceVersion") ?? rv);
            res.writeHead(200, {
              "content-type": "application/json",
              "transfer-encoding": "chunked",
            });
            for (const ev of events) {
              if (
                ev.rv > from &&
                ev.object.metadata.namespace === ns &&
                matchesPod(ev.object, field, label)
              ) {
                res.write(`${JSON.stringify({ type: ev.type, object: ev.object })}\n`);
              }
            }
            const w = { ns, field, label, res };
            watchers.add(w);
            openStreams.add(res);
            res.on("close", () => {
              watchers.delete(w);
              openStreams.delete(res);
            });
            return;
          }
          const items = [...runs.values()]
            .map((r) => r.pod)
            .filter((p) => p.metadata.namespace === ns && matchesPod(p, field, label));
          return send(res, 200, {
            kind: "PodList",
            apiVersion: "v1",
            metadata: { resourceVersion: String(rv) },
            items,
          });
        }
        m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)(\/log)?$/.exec(url.pathname);
        if (m) {
          const ns = decodeURIComponent(m[1]!);
          const name = decodeURIComponent(m[2]!);
          const run = runs.get(key(ns, name));
          if (!run)
            return send(
              res,
              404,
              status(404, "NotFound", `pods "${name}" not found`, { name, kind: "pods" }),
            );
          if (m[3]) {
            const container = url.searchParams.get("container") ?? run.pod.spec.containers[0]!.name;
            return streamLog(run, container, url.searchParams.get("follow") === "true", res);
          }
          if (req.method === "DELETE") {
            let grace = Number(url.searchParams.get("gracePeriodSeconds") ?? NaN);
            if (!Number.isFinite(grace) && text) {
              const opts = JSON.parse(text) as { gracePeriodSeconds?: number };
              if (typeof opts.gracePeriodSeconds === "number") grace = opts.gracePeriodSeconds;
            }
            if (!Number.isFinite(grace)) grace = run.pod.spec.terminationGracePeriodSeconds ?? 30;
            return deletePod(run, grace, res);
          }
          return send(res, 200, run.pod);
        }
        m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(url.pathname);
        if (m) {
          const ns = decodeURIComponent(m[1]!);
          if (req.method === "POST" && !m[2]) {
            const secret = JSON.parse(text ?? "{}") as Json & { metadata: Json & { name: string } };
            if (secrets.has(key(ns, secret.metadata.name))) {
              return send(
                res,
                409,
                status(409, "AlreadyExists", `secrets "${secret.metadata.name}" already exists`),
              );
            }
            secret.metadata = {
              ...secret.metadata,
              namespace: ns,
              uid: randomUUID(),
              creationTimestamp: now(),
              resourceVersion: String(++rv),
            };
            secrets.set(key(ns, secret.metadata.name), secret);
            return send(res, 201, secret);
          }
          if (req.method === "DELETE" && m[2]) {
            const name = decodeURIComponent(m[2]);
            if (!secrets.delete(key(ns, name)))
              return send(res, 404, status(404, "NotFound", `secrets "${name}" not found`));
            return send(res, 200, {
              kind: "Status",
              apiVersion: "v1",
              metadata: {},
              status: "Success",
              details: { name, kind: "secrets" },
            });
          }
          if (req.method === "GET" && !m[2]) {
            const label = url.searchParams.get("labelSelector");
            const items = [...secrets.values()].filter((s) =>
              matches((s["metadata"] as { labels?: Record<string, string> }).labels, label),
            );
            return send(res, 200, {
              kind: "SecretList",
              apiVersion: "v1",
              metadata: { resourceVersion: String(rv) },
              items,
            });
          }
        }
        send(
          res,
          404,
          status(
            404,
            "NotFound",
            `the server could not find the requested resource (${req.method} ${url.pathname})`,
          ),
        );
      })().catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, status(500, "InternalError", String(err)));
        else res.destroy();
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `https://127.0.0.1:${port}`,
    token,
    requests,
    pods: () => [...runs.values()].map((r) => r.pod),
    secrets: () => [...secrets.values()],
    processes: () => [...runs.values()].flatMap((r) => (r.proc?.pid ? [r.proc.pid] : [])),
    dropStreams() {
      for (const s of openStreams) s.destroy();
      openStreams.clear();
    },
    async close() {
      for (const run of runs.values()) {
        for (const t of run.timers) clearTimeout(t);
        clearTimeout(run.killTimer);
        if (run.proc?.pid) {
          try {
            process.kill(-run.proc.pid, "SIGKILL");
          } catch {
            // gone
          }
        }
      }
      for (const s of openStreams) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
