/**
 * The worker SDK: write a colony worker in any Node program (docs/ants.md).
 */
export { startWebSocketWorker } from "./websocket-worker.ts";
export type { WebSocketWorker, WebSocketWorkerOptions } from "./websocket-worker.ts";
export { startMessagingWorker } from "./messaging-worker.ts";
export type { MessagingWorkerOptions } from "./messaging-worker.ts";
export type { TaskHandler, Worker, WorkerReply } from "./worker-common.ts";
export type { TaskRequest, TaskResponse } from "../ants/task-request.ts";
