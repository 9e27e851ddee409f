/**
 * Where to draw a job's tasks: a layered layout (longest path from the entry task, so
 * every edge points forward), tasks ordered within a layer by the mean position of their
 * predecessors to cut crossings. Edges come from on_completed, on_failed, on_exit_code
 * (to tasks; COMPLETED/FAILED/EXECUTING are actions, not edges) and depends_on.
 */
import type { JobDefinitionView } from "./types.ts";

export type EdgeKind = "completed" | "failed" | "exit" | "join";

export interface DagEdge {
  from: string;
  to: string;
  kind: EdgeKind;
  label?: string;
}

export interface DagNode {
  id: string;
  layer: number;
  /** Position within its layer. */
  order: number;
  x: number;
  y: number;
  alwaysRun: boolean;
}

export interface DagLayout {
  nodes: DagNode[];
  edges: DagEdge[];
  width: number;
  height: number;
  vertical: boolean;
}

export const NODE_W = 156;
export const NODE_H = 46;
const GAP_LAYER = 64;
const GAP_SIBLING = 18;
const PAD = 12;
const ACTIONS = new Set(["COMPLETED", "FAILED", "EXECUTING"]);

function list(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  return [];
}

export function dagEdges(def: JobDefinitionView): DagEdge[] {
  const names = new Set(def.tasks.map((t) => t.task_type));
  const edges: DagEdge[] = [];
  const add = (e: DagEdge) => {
    if (names.has(e.to) && names.has(e.from) && e.to !== e.from) edges.push(e);
  };
  for (const t of def.tasks) {
    for (const to of list(t.on_completed)) add({ from: t.task_type, to, kind: "completed" });
    for (const to of list(t.on_failed)) add({ from: t.task_type, to, kind: "failed" });
    for (const [code, target] of Object.entries(t.on_exit_code ?? {})) {
      for (const to of list(target))
        if (!ACTIONS.has(to)) add({ from: t.task_type, to, kind: "exit", label: `exit ${code}` });
    }
    for (const from of list(t.depends_on)) add({ from, to: t.task_type, kind: "join" });
  }
  return edges;
}

export function layoutDag(def: JobDefinitionView, vertical: boolean): DagLayout {
  const edges = dagEdges(def);
  const ids = def.tasks.map((t) => t.task_type);
  const preds = new Map<string, string[]>(ids.map((id) => [id, []]));
  const succs = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const e of edges) {
    preds.get(e.to)!.push(e.from);
    succs.get(e.from)!.push(e.to);
  }

  // Longest path from the sources (Kahn's order; definitions are acyclic).
  const layer = new Map<string, number>();
  const indegree = new Map(ids.map((id) => [id, preds.get(id)!.length]));
  const queue = ids.filter((id) => indegree.get(id) === 0);
  for (const id of queue) layer.set(id, 0);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i]!;
    for (const s of succs.get(id)!) {
      layer.set(s, Math.max(layer.get(s) ?? 0, (layer.get(id) ?? 0) + 1));
      indegree.set(s, indegree.get(s)! - 1);
      if (indegree.get(s) === 0) queue.push(s);
    }
  }
  // always_run tasks nothing leads to run at the end: draw them last.
  let maxLayer = 0;
  for (const id of ids) maxLayer = Math.max(maxLayer, layer.get(id) ?? 0);
  const always = new Set(def.tasks.filter((t) => t.always_run).map((t) => t.task_type));
  for (const id of ids) {
    if (!layer.has(id)) layer.set(id, 0); // a cycle (the parser refuses them): keep it visible
    if (
      always.has(id) &&
      preds.get(id)!.length === 0 &&
      succs.get(id)!.length === 0 &&
      id !== ids[0]
    )
      layer.set(id, maxLayer + 1);
  }

  const layers: string[][] = [];
  for (const id of ids) (layers[layer.get(id)!] ??= []).push(id);
  for (let i = 0; i < layers.length; i++) layers[i] ??= [];
  // Two sweeps of barycentre ordering.
  const pos = new Map<string, number>();
  const place = () => layers.forEach((l) => l.forEach((id, i) => pos.set(id, i)));
  place();
  for (let sweep = 0; sweep < 2; sweep++) {
    for (let i = 1; i < layers.length; i++) {
      const weight = (id: string) => {
        const p = preds.get(id)!.filter((x) => pos.has(x));
        return p.length ? p.reduce((a, x) => a + pos.get(x)!, 0) / p.length : pos.get(id)!;
      };
      layers[i]!.sort((a, b) => weight(a) - weight(b));
      place();
    }
  }

  const widest = Math.max(1, ...layers.map((l) => l.length));
  const along = (i: number) => PAD + i * ((vertical ? NODE_H : NODE_W) + GAP_LAYER);
  const across = (order: number, size: number) => {
    const step = (vertical ? NODE_W : NODE_H) + GAP_SIBLING;
    return PAD + ((widest - size) * step) / 2 + order * step;
  };
  const nodes: DagNode[] = [];
  layers.forEach((l, li) =>
    l.forEach((id, order) => {
      const a = along(li);
      const c = across(order, l.length);
      nodes.push({
        id,
        layer: li,
        order,
        x: vertical ? c : a,
        y: vertical ? a : c,
        alwaysRun: always.has(id),
      });
    }),
  );
  const depth =
    PAD * 2 + layers.length * (vertical ? NODE_H : NODE_W) + (layers.length - 1) * GAP_LAYER;
  const breadth = PAD * 2 + widest * (vertical ? NODE_W : NODE_H) + (widest - 1) * GAP_SIBLING;
  return {
    nodes,
    edges,
    width: vertical ? breadth : depth,
    height: vertical ? depth : breadth,
    vertical,
  };
}
