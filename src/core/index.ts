export * from "./errors.ts";
export * from "./states.ts";
export * from "./duration.ts";
export * from "./ids.ts";
export * from "./job-definition.ts";
export * from "./job-request.ts";
export * from "./executor.ts";
export * from "./events.ts";
