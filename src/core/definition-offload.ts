/**
 * Parses large job definitions on a worker thread, so that a server's event loop goes on
 * answering (other requests, ant heartbeats, output streams) while a big one is read:
 * parseJobDefinition costs ~100 µs a task, and the 10 MiB body limit allows ~100,000
 * tasks, seconds of stalled loop. Texts under OFF_LOOP_MIN_CHARS (nearly every real
 * definition) are parsed in place, where the hop to the worker would cost more than the
 * parse. The worker is started on first use and kept, unreferenced while idle.
 *
 * The result is the same object parseJobDefinition gives (plain data, structured-cloned
 * back); a refusal is the same DefinitionError, rebuilt from what the worker reports.
 * Should the worker fail (not start, or die), the text is parsed in place instead.
 */
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { DefinitionError, type SourcePosition } from "./errors.ts";
import { parseJobDefinition, type ParseDefinitionOptions } from "./definition-parser.ts";
import type { JobDefinition } from "./job-definition.ts";

/** From this many characters a definition is parsed off the event loop (~400 tasks, ~40 ms). */
export const OFF_LOOP_MIN_CHARS = 32 * 1024;

const MARK = "colony-definition-parser";

interface Request {
  id: number;
  text: string;
  options: ParseDefinitionOptions;
}

type Answer =
  | { id: number; definition: JobDefinition }
  | { id: number; refused: { reason: string; path: string; position?: SourcePosition } }
  | { id: number; failed: string };

/** parseJobDefinition, off the event loop for a large text. */
export async function parseJobDefinitionOffLoop(
  text: string,
  options: ParseDefinitionOptions = {},
): Promise<JobDefinition> {
  if (typeof text !== "string" || text.length < OFF_LOOP_MIN_CHARS) {
    return parseJobDefinition(text, options);
  }
  return (parser ??= new OffLoopParser()).parse(text, options);
}

let parser: OffLoopParser | undefined;

class OffLoopParser {
  #worker: Worker | undefined;
  #next = 1;
  readonly #waiting = new Map<
    number,
    { request: Request; resolve: (d: JobDefinition) => void; reject: (e: unknown) => void }
  >();

  parse(text: string, options: ParseDefinitionOptions): Promise<JobDefinition> {
    const request: Request = { id: this.#next++, text, options };
    return new Promise<JobDefinition>((resolve, reject) => {
      this.#waiting.set(request.id, { request, resolve, reject });
      try {
        const worker = this.#start();
        worker.ref();
        worker.postMessage(request);
      } catch {
        this.#inPlace();
      }
    });
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL(import.meta.url), { workerData: { [MARK]: true } });
    worker.unref();
    worker.on("message", (answer: Answer) => this.#answered(answer));
    const gone = () => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#inPlace();
    };
    worker.once("error", gone);
    worker.once("exit", gone);
    this.#worker = worker;
    return worker;
  }

  #answered(answer: Answer): void {
    const waiting = this.#waiting.get(answer.id);
    if (!waiting) return;
    this.#waiting.delete(answer.id);
    if (this.#waiting.size === 0) this.#worker?.unref();
    if ("definition" in answer) waiting.resolve(answer.definition);
    else if ("refused" in answer) {
      const { reason, path, position } = answer.refused;
      waiting.reject(new DefinitionError(reason, path, position));
    } else waiting.reject(new Error(answer.failed));
  }

  /** The worker is gone: what it had not answered is parsed here. */
  #inPlace(): void {
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const { request, resolve, reject } of waiting) {
      try {
        resolve(parseJobDefinition(request.text, request.options));
      } catch (error) {
        reject(error);
      }
    }
  }
}

function runWorker(): void {
  parentPort?.on("message", (request: Request) => {
    let answer: Answer;
    try {
      answer = { id: request.id, definition: parseJobDefinition(request.text, request.options) };
    } catch (error) {
      answer =
        error instanceof DefinitionError
          ? {
              id: request.id,
              refused: { reason: error.reason, path: error.path, position: error.position },
            }
          : { id: request.id, failed: String((error as Error)?.message ?? error) };
    }
    parentPort?.postMessage(answer);
  });
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[MARK] === true) runWorker();
