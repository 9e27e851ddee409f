/**
 * The few Kubernetes API calls the KUBERNETES executor makes, through
 * @kubernetes/client-node: pods (create, read, list by label, watch, log, delete) and
 * secrets (the per-execution registry credentials). The library is imported on first
 * use: it takes most of a second to load, and most colony processes never run a pod.
 *
 * Connection: the ant config's host, bearer_token, cert_file, key_file and ca_file when
 * host is set; otherwise the usual discovery (KUBECONFIG, ~/.kube/config, in-cluster).
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";
import type { Readable } from "node:stream";
import type { CoreV1Api, KubeConfig, V1Pod, V1Secret } from "@kubernetes/client-node";
import { ExecutorError } from "../../core/errors.ts";
import { maskIn, type KubernetesConfig } from "../container-options.ts";

// eslint-disable-next-line @typescript-eslint/consistent-type-imports -- the module's type, loaded lazily
type ClientModule = typeof import("@kubernetes/client-node");

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: V1Pod;
}

export interface KubeClient {
  /** The namespace pods go to: kubernetes.namespace, else the context's, else default. */
  namespace(): Promise<string>;
  /** Where the API server is, for messages. */
  server(): Promise<string>;
  createPod(namespace: string, pod: V1Pod): Promise<V1Pod>;
  readPod(namespace: string, name: string): Promise<V1Pod | undefined>;
  listPods(namespace: string, labelSelector: string): Promise<V1Pod[]>;
  deletePod(namespace: string, name: string, graceSeconds: number): Promise<void>;
  /** Watches one pod from `resourceVersion`; `done` is called once when the watch ends. */
  watchPod(
    namespace: string,
    name: string,
    resourceVersion: string | undefined,
    onEvent: (e: WatchEvent) => void,
    done: (err?: unknown) => void,
  ): Promise<AbortController>;
  /** The container's log from its start; with `follow`, open until the container ends. */
  log(namespace: string, pod: string, container: string, follow: boolean): Promise<Readable>;
  createSecret(namespace: string, secret: V1Secret): Promise<void>;
  deleteSecret(namespace: string, name: string): Promise<void>;
  listSecrets(namespace: string, labelSelector: string): Promise<V1Secret[]>;
  /** GET /version: whether the API server answers with these credentials. */
  ping(signal?: AbortSignal): Promise<boolean>;
}

/** The KubeConfig options for an explicit host (the seed's ant config). */
export function kubeConfigOptions(config: KubernetesConfig) {
  const host = config.host!;
  const server = /^https?:\/\//.test(host) ? host : `https://${host}`;
  return {
    clusters: [
      {
        name: "colony",
        server,
        ...(config.ca_file ? { caFile: config.ca_file } : {}),
        skipTLSVerify: false,
      },
    ],
    users: [
      {
        name: "colony",
        ...(config.bearer_token ? { token: config.bearer_token } : {}),
        ...(config.cert_file ? { certFile: config.cert_file } : {}),
        ...(config.key_file ? { keyFile: config.key_file } : {}),
      },
    ],
    contexts: [
      {
        name: "colony",
        cluster: "colony",
        user: "colony",
        ...(config.namespace ? { namespace: config.namespace } : {}),
      },
    ],
    currentContext: "colony",
  };
}

export function createKubeClient(config: KubernetesConfig): KubeClient {
  let loaded: Promise<{ k8s: ClientModule; kc: KubeConfig; core: CoreV1Api }> | undefined;
  const secrets = [config.bearer_token, config.registry?.password];

  function load() {
    loaded ??= (async () => {
      const k8s = await import("@kubernetes/client-node");
      const kc = new k8s.KubeConfig();
      try {
        if (config.host) kc.loadFromOptions(kubeConfigOptions(config));
        else kc.loadFromDefault();
      } catch (err) {
        throw new ExecutorError(
          "COLONY_KUBERNETES_CONFIG",
          maskIn(
            `cannot load the Kubernetes client config: ${(err as Error).message}; set kubernetes.host (and bearer_token or cert_file/key_file) in colony.yaml, or KUBECONFIG`,
            secrets,
          ),
        );
      }
      if (!kc.getCurrentCluster()) {
        throw new ExecutorError(
          "COLONY_KUBERNETES_CONFIG",
          "no Kubernetes cluster is configured; set kubernetes.host in colony.yaml, or KUBECONFIG",
        );
      }
      return { k8s, kc, core: kc.makeApiClient(k8s.CoreV1Api) };
    })();
    loaded.catch(() => (loaded = undefined));
    return loaded;
  }

  /** An API failure as an ExecutorError with the server's own message, secrets masked. */
  function wrap(what: string, err: unknown): ExecutorError {
    const e = err as { code?: number; body?: unknown; message?: string };
    let message = e.message ?? String(err);
    let status = typeof e.code === "number" ? e.code : undefined;
    if (e.body) {
      try {
        const body = (typeof e.body === "string" ? JSON.parse(e.body) : e.body) as {
          message?: string;
          code?: number;
        };
        if (body.message) message = body.message;
        if (typeof body.code === "number") status = body.code;
      } catch {
        // keep the library's message
      }
    }
    const out = new ExecutorError(
      status === 409 ? "COLONY_KUBERNETES_CONFLICT" : "COLONY_KUBERNETES_API",
      maskIn(`${what}: ${status ? `${status} ` : ""}${message.split("\n")[0]}`, secrets),
      { retryable: status === undefined || status >= 500 },
    );
    (out as ExecutorError & { httpStatus?: number }).httpStatus = status;
    return out;
  }

  const statusOf = (err: unknown) => (err as { code?: number }).code;

  return {
    async namespace() {
      if (config.namespace) return config.namespace;
      const { kc } = await load();
      const ctx = kc.getContextObject(kc.getCurrentContext());
      return ctx?.namespace ?? "default";
    },

    async server() {
      const { kc } = await load();
      return kc.getCurrentCluster()?.server ?? "(unknown)";
    },

    async createPod(namespace, pod) {
      const { core } = await load();
      try {
        return await core.createNamespacedPod({ namespace, body: pod, fieldValidation: "Strict" });
      } catch (err) {
        throw wrap(`creating pod ${pod.metadata?.name} in ${namespace}`, err);
      }
    },

    async readPod(namespace, name) {
      const { core } = await load();
      try {
        return await core.readNamespacedPod({ namespace, name });
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw wrap(`reading pod ${name}`, err);
      }
    },

    async listPods(namespace, labelSelector) {
      const { core } = await load();
      try {
        return (await core.listNamespacedPod({ namespace, labelSelector })).items;
      } catch (err) {
        throw wrap(`listing pods (${labelSelector})`, err);
      }
    },

    async deletePod(namespace, name, graceSeconds) {
      const { core } = await load();
      try {
        await core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: graceSeconds });
      } catch (err) {
        if (statusOf(err) === 404) return;
        throw wrap(`deleting pod ${name}`, err);
      }
    },

    async watchPod(namespace, name, resourceVersion, onEvent, done) {
      const { k8s, kc } = await load();
      const watch = new k8s.Watch(kc);
      return watch.watch(
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
        {
          fieldSelector: `metadata.name=${name}`,
          ...(resourceVersion ? { resourceVersion } : {}),
          allowWatchBookmarks: true,
        },
        (type: string, object: V1Pod) => onEvent({ type: type as WatchEvent["type"], object }),
        (err: unknown) => done(err ?? undefined),
      );
    },

    async log(namespace, pod, container, follow) {
      // node:https rather than the library's Log: its stream errors (a dropped
      // connection) are emitted where no one can listen, and would crash colony.
      const { kc } = await load();
      const server = kc.getCurrentCluster()!.server;
      const url = new URL(
        `${server}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log`,
      );
      url.searchParams.set("container", container);
      if (follow) url.searchParams.set("follow", "true");
      const opts: RequestOptions = { method: "GET", headers: {} };
      await kc.applyToHTTPSOptions(opts);
      const send = url.protocol === "https:" ? httpsRequest : httpRequest;
      return new Promise<Readable>((resolve, reject) => {
        const req = send(url, opts, (res: IncomingMessage) => {
          if (res.statusCode === 200) return resolve(res);
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", () => undefined);
          res.on("end", () =>
            reject(
              wrap(`reading the log of ${pod}/${container}`, {
                code: res.statusCode,
                body: Buffer.concat(chunks).toString("utf8"),
              }),
            ),
          );
        });
        req.on("error", (err) => reject(wrap(`reading the log of ${pod}/${container}`, err)));
        req.end();
      });
    },

    async createSecret(namespace, secret) {
      const { core } = await load();
      try {
        await core.createNamespacedSecret({ namespace, body: secret, fieldValidation: "Strict" });
      } catch (err) {
        // Never echo the secret's body: only its name and the server's status.
        throw wrap(`creating the registry secret ${secret.metadata?.name}`, {
          code: statusOf(err),
          message: "refused",
          body: (err as { body?: unknown }).body,
        });
      }
    },

    async deleteSecret(namespace, name) {
      const { core } = await load();
      try {
        await core.deleteNamespacedSecret({ namespace, name });
      } catch (err) {
        if (statusOf(err) === 404) return;
        throw wrap(`deleting secret ${name}`, err);
      }
    },

    async listSecrets(namespace, labelSelector) {
      const { core } = await load();
      try {
        return (await core.listNamespacedSecret({ namespace, labelSelector })).items;
      } catch (err) {
        throw wrap(`listing secrets (${labelSelector})`, err);
      }
    },

    async ping(signal) {
      try {
        const { k8s, kc } = await load();
        const version = kc.makeApiClient(k8s.VersionApi).getCode();
        version.catch(() => undefined);
        const limit = new Promise<never>((_, reject) => {
          const timer = setTimeout(() => reject(new Error("timeout")), 5000);
          timer.unref();
          signal?.addEventListener("abort", () => reject(new Error("aborted")), { once: true });
        });
        await Promise.race([version, limit]);
        return true;
      } catch {
        return false;
      }
    },
  };
}
