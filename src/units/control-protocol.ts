/**
 * receptor's control-service line protocol (SPEC section 7; receptor pkg/controlsvc and
 * pkg/workceptor/controlsvc.go), parsing and formatting only; control-server.ts does
 * the I/O.
 *
 * - The server greets with `Receptor Control, node <id>\n`.
 * - A request is one line (`\r` ignored). A line starting with `{` is a JSON object with
 *   a string `command`; otherwise the first space-separated word is the command
 *   (case-insensitive) and the rest its parameters.
 * - A reply is one JSON line, or `ERROR: <message>\n`. JSON is written as Go's
 *   encoding/json writes a map: keys sorted, `<`, `>` and `&` escaped.
 * - `work submit` and `work results` switch the connection to a byte stream after
 *   their first reply line (see control-server.ts).
 */

export const RESERVED_SUBMIT_KEYS: ReadonlySet<string> = new Set([
  "command",
  "subcommand",
  "node",
  "worktype",
  "tlsclient",
  "ttl",
  "signwork",
  "signature",
]);

export interface SubmitRequest {
  kind: "work-submit";
  node: string;
  workType: string;
  /** Every non-reserved key (`params` is the runtime params string). */
  params: Record<string, string>;
  ttl?: string;
  signWork: boolean;
  tlsClient?: string;
  signature?: string;
}

export type ControlRequest =
  | { kind: "status"; fields?: string[] }
  | { kind: "ping"; target: string }
  | { kind: "traceroute"; target: string }
  | SubmitRequest
  | { kind: "work-list"; unitId?: string }
  | {
      kind: "work-status" | "work-cancel" | "work-release" | "work-force-release";
      unitId: string;
      signature?: string;
    }
  | { kind: "work-results"; unitId: string; startPos: number; signature?: string };

/** A line that is not a valid request; the message goes back as `ERROR: <message>`. */
export class ProtocolError extends Error {}

export const COMMANDS = ["status", "ping", "traceroute", "work"] as const;
export const WORK_SUBCOMMANDS = [
  "submit",
  "list",
  "status",
  "results",
  "cancel",
  "release",
  "force-release",
] as const;

export function greeting(nodeId: string): string {
  return `Receptor Control, node ${nodeId}\n`;
}

export function submitCreatedLine(unitId: string): string {
  return `Work unit created with ID ${unitId}. Send stdin data and EOF.\n`;
}

export function resultsHeaderLine(unitId: string): string {
  return `Streaming results for work unit ${unitId}\n`;
}

export function errorLine(message: string): string {
  return `ERROR: ${message.replace(/[\r\n]+/g, " ")}\n`;
}

/** Parses one request line (without its newline). Throws ProtocolError. */
export function parseRequest(line: string): ControlRequest {
  if (line.startsWith("{")) return parseJsonRequest(line);
  const space = line.indexOf(" ");
  const command = (space < 0 ? line : line.slice(0, space)).toLowerCase();
  const rest = space < 0 ? "" : line.slice(space + 1);
  switch (command) {
    case "status":
      if (rest !== "") throw new ProtocolError("status command does not take parameters");
      return { kind: "status" };
    case "ping":
      if (rest === "") throw new ProtocolError("no ping target");
      return { kind: "ping", target: rest };
    case "traceroute":
      if (rest === "") throw new ProtocolError("no traceroute target");
      return { kind: "traceroute", target: rest };
    case "work":
      return parseWorkWords(rest);
    default:
      throw unknownCommand(command);
  }
}

function unknownCommand(command: string): ProtocolError {
  // Echo a long line only in part: the answer names the command, it does not return the line.
  const shown =
    command.length > 80 ? `${command.slice(0, 80)}...' (${command.length} bytes)` : `${command}'`;
  return new ProtocolError(
    `Unknown command${command ? ` '${shown}` : ""}; this node knows ${COMMANDS.join(", ")} ` +
      `(work ${WORK_SUBCOMMANDS.join("|")})`,
  );
}

function noSubcommand(sub: string): ProtocolError {
  return new ProtocolError(
    sub === ""
      ? `work needs a subcommand: ${WORK_SUBCOMMANDS.join(", ")}`
      : `unknown work subcommand '${sub}'; use ${WORK_SUBCOMMANDS.join(", ")}`,
  );
}

function parseWorkWords(params: string): ControlRequest {
  const tokens = params.split(" ");
  const sub = (tokens[0] ?? "").toLowerCase();
  switch (sub) {
    case "submit": {
      if (tokens.length < 3) {
        throw new ProtocolError("work submit requires a target node and work type");
      }
      const request: SubmitRequest = {
        kind: "work-submit",
        node: tokens[1]!,
        workType: tokens[2]!,
        params: {},
        signWork: false,
      };
      if (tokens.length > 3) request.params.params = tokens.slice(3).join(" ");
      return request;
    }
    case "list":
      return tokens.length > 1 && tokens[1] !== ""
        ? { kind: "work-list", unitId: tokens[1]! }
        : { kind: "work-list" };
    case "status":
    case "cancel":
    case "release":
    case "force-release":
      if (tokens.length < 2 || tokens[1] === "") {
        throw new ProtocolError(`work ${sub} requires a unit ID`);
      }
      if (tokens.length > 2) {
        throw new ProtocolError(`work ${sub} does not take parameters after the unit ID`);
      }
      return { kind: `work-${sub}`, unitId: tokens[1]! };
    case "results": {
      if (tokens.length < 2 || tokens[1] === "") {
        throw new ProtocolError("work results requires a unit ID");
      }
      if (tokens.length > 3) {
        throw new ProtocolError("work results only takes a unit ID and optional start position");
      }
      const startPos = tokens.length > 2 ? parseStartPos(tokens[2]!) : 0;
      return { kind: "work-results", unitId: tokens[1]!, startPos };
    }
    default:
      throw noSubcommand(sub);
  }
}

function parseStartPos(text: string): number {
  if (!/^\+?\d{1,15}$/.test(text)) {
    throw new ProtocolError(
      `error converting start position to integer: '${text}' is not a byte offset`,
    );
  }
  return Number(text);
}

function parseJsonRequest(line: string): ControlRequest {
  let data: unknown;
  try {
    data = JSON.parse(line);
  } catch (error) {
    throw new ProtocolError(`invalid JSON: ${(error as Error).message}`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ProtocolError("a JSON request must be an object with a command");
  }
  const obj = data as Record<string, unknown>;
  if (!("command" in obj)) throw new ProtocolError("JSON did not contain a command");
  if (typeof obj.command !== "string") throw new ProtocolError("command must be a string");
  switch (obj.command) {
    case "status": {
      const fields = obj.requested_fields;
      if (fields === undefined) return { kind: "status" };
      if (!Array.isArray(fields) || fields.some((f) => typeof f !== "string")) {
        throw new ProtocolError("each element of requested_fields must be a string");
      }
      return { kind: "status", fields: fields as string[] };
    }
    case "ping":
    case "traceroute": {
      const target = obj.target;
      if (target === undefined) throw new ProtocolError(`no ${obj.command} target`);
      if (typeof target !== "string")
        throw new ProtocolError(`${obj.command} target must be string`);
      return { kind: obj.command, target };
    }
    case "work":
      return parseWorkJson(obj);
    default:
      throw unknownCommand(obj.command);
  }
}

function str(obj: Record<string, unknown>, key: string): string {
  const value = obj[key];
  if (value === undefined) throw new ProtocolError(`field ${key} missing`);
  if (typeof value !== "string") throw new ProtocolError(`field ${key} must be a string`);
  return value;
}

function optionalStr(obj: Record<string, unknown>, key: string): string | undefined {
  const value = obj[key];
  return typeof value === "string" ? value : undefined;
}

function parseWorkJson(obj: Record<string, unknown>): ControlRequest {
  const sub = str(obj, "subcommand").toLowerCase();
  switch (sub) {
    case "submit": {
      for (const [k, v] of Object.entries(obj)) {
        if (typeof v !== "string") {
          throw new ProtocolError(`submit parameters must all be strings and ${k} is not`);
        }
      }
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(obj)) {
        if (!RESERVED_SUBMIT_KEYS.has(k)) params[k] = v as string;
      }
      const signWork = obj.signwork;
      if (signWork !== undefined && signWork !== "true" && signWork !== "false") {
        throw new ProtocolError(
          `field signwork value ${String(signWork)} is not convertible to a bool`,
        );
      }
      const request: SubmitRequest = {
        kind: "work-submit",
        node: str(obj, "node"),
        workType: str(obj, "worktype"),
        params,
        signWork: signWork === "true",
      };
      const ttl = optionalStr(obj, "ttl");
      if (ttl) request.ttl = ttl;
      const tlsClient = optionalStr(obj, "tlsclient");
      if (tlsClient) request.tlsClient = tlsClient;
      const signature = optionalStr(obj, "signature");
      if (signature) request.signature = signature;
      return request;
    }
    case "list": {
      const unitId = optionalStr(obj, "unitid");
      return unitId ? { kind: "work-list", unitId } : { kind: "work-list" };
    }
    case "status":
    case "cancel":
    case "release":
    case "force-release": {
      const request: ControlRequest = { kind: `work-${sub}`, unitId: str(obj, "unitid") };
      const signature = optionalStr(obj, "signature");
      if (signature) request.signature = signature;
      return request;
    }
    case "results": {
      const unitId = str(obj, "unitid");
      const raw = obj.startpos;
      let startPos: number;
      if (raw === undefined) throw new ProtocolError("field startpos missing");
      if (typeof raw === "number" && Number.isFinite(raw) && raw >= 0) startPos = Math.trunc(raw);
      else if (typeof raw === "string") startPos = parseStartPos(raw);
      else
        throw new ProtocolError(`field startpos value ${String(raw)} is not convertible to an int`);
      const request: ControlRequest = { kind: "work-results", unitId, startPos };
      const signature = optionalStr(obj, "signature");
      if (signature) request.signature = signature;
      return request;
    }
    default:
      throw noSubcommand(sub);
  }
}

/**
 * JSON as Go's encoding/json writes it: maps (plain objects) with sorted keys down to
 * `sortDepth` levels (deeper objects are Go structs, kept in their field order), and
 * `<`, `>`, `&`, U+2028 and U+2029 escaped.
 */
export function goJson(value: unknown, sortDepth = 1): string {
  const text = JSON.stringify(sortKeys(value, sortDepth));
  return text.replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function sortKeys(value: unknown, depth: number): unknown {
  if (depth <= 0 || typeof value !== "object" || value === null || Array.isArray(value)) {
    return value;
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    out[key] = sortKeys((value as Record<string, unknown>)[key], depth - 1);
  }
  return out;
}

/** One reply line. */
export function replyLine(value: unknown, sortDepth = 1): string {
  return goJson(value, sortDepth) + "\n";
}

/** A duration as Go's time.Duration.String() writes it ("1.5s", "2.301ms", "800µs"). */
export function goDuration(ns: number): string {
  if (ns === 0) return "0s";
  const trim = (n: number, digits: number) => n.toFixed(digits).replace(/\.?0+$/, "");
  if (ns < 1000) return `${ns}ns`;
  if (ns < 1e6) return `${trim(ns / 1e3, 3)}µs`;
  if (ns < 1e9) return `${trim(ns / 1e6, 6)}ms`;
  let s = ns / 1e9;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ""}${h || m ? `${m}m` : ""}${trim(s, 9)}s`;
}
