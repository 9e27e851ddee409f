/**
 * A job's DAG as an SVG graph. Each node is a task, coloured by the state of its latest
 * execution in the job's current attempt (it changes as task:state events arrive);
 * edges show how tasks follow each other (on_completed solid, on_failed red dashed,
 * on_exit_code labelled, depends_on joins dotted). Nodes are focusable: Tab to one,
 * Enter to select it; arrow keys move between tasks.
 */
import { Component, type JSX } from "preact";
import { useMemo, useRef } from "preact/hooks";
import { layoutDag, NODE_H, NODE_W, type DagLayout, type DagNode } from "../dag-layout.ts";
import type { JobDefinitionView } from "../types.ts";

export interface TaskSummary {
  state?: string;
  attempts: number;
}

interface Props {
  definition: JobDefinitionView;
  tasks: Record<string, TaskSummary>;
  selected?: string;
  onSelect: (task: string) => void;
  vertical: boolean;
  /** The job ended: tasks that never ran are shown as skipped. */
  jobEnded: boolean;
}

function edgePath(layout: DagLayout, a: DagNode, b: DagNode): string {
  if (layout.vertical) {
    const x1 = a.x + NODE_W / 2;
    const y1 = a.y + NODE_H;
    const x2 = b.x + NODE_W / 2;
    const y2 = b.y;
    const m = (y1 + y2) / 2;
    return `M${x1},${y1} C${x1},${m} ${x2},${m} ${x2},${y2 - 2}`;
  }
  const x1 = a.x + NODE_W;
  const y1 = a.y + NODE_H / 2;
  const x2 = b.x;
  const y2 = b.y + NODE_H / 2;
  const m = (x1 + x2) / 2;
  return `M${x1},${y1} C${m},${y1} ${m},${y2} ${x2 - 2},${y2}`;
}

function short(name: string, max = 19): string {
  return name.length > max ? name.slice(0, max - 1) + "…" : name;
}

interface NodeActions {
  select: (id: string) => void;
  move: (from: DagNode, key: string) => void;
}

interface NodeProps {
  node: DagNode;
  state: string;
  attempts: number;
  selected: boolean;
  actions: NodeActions;
}

/** One task of the graph; redrawn only when what it shows changes. */
class Node extends Component<NodeProps> {
  override shouldComponentUpdate(next: NodeProps): boolean {
    const p = this.props;
    return (
      p.state !== next.state ||
      p.attempts !== next.attempts ||
      p.selected !== next.selected ||
      p.node !== next.node ||
      p.actions !== next.actions
    );
  }

  override render(): JSX.Element {
    const { node: n, state, attempts, selected, actions } = this.props;
    const label =
      state === "WAITING" ? "not started" : state === "SKIPPED" ? "not run" : state.toLowerCase();
    return (
      <g
        class={`node s-${state}${selected ? " selected" : ""}`}
        data-task={n.id}
        data-state={state}
        transform={`translate(${n.x},${n.y})`}
        // lowercase: on SVG elements the attribute name is case-sensitive
        tabindex={0}
        role="button"
        aria-pressed={selected}
        aria-label={`task ${n.id}: ${label}${attempts > 1 ? `, attempt ${attempts}` : ""}`}
        onClick={() => actions.select(n.id)}
        onKeyDown={(ev) => {
          if (ev.key === "Enter" || ev.key === " ") {
            ev.preventDefault();
            actions.select(n.id);
          } else if (ev.key.startsWith("Arrow")) {
            ev.preventDefault();
            actions.move(n, ev.key);
          }
        }}
      >
        <title>{`${n.id}: ${label}${n.alwaysRun ? " (always runs)" : ""}`}</title>
        <rect width={NODE_W} height={NODE_H} rx="8" />
        <text x="12" y="19" class="node-name">
          {short(n.id)}
        </text>
        <text x="12" y="36" class="node-state">
          {label}
          {attempts > 1 ? ` · try ${attempts}` : ""}
          {n.alwaysRun ? " · always" : ""}
        </text>
      </g>
    );
  }
}

export function Dag({
  definition,
  tasks,
  selected,
  onSelect,
  vertical,
  jobEnded,
}: Props): JSX.Element {
  const layout = useMemo(() => layoutDag(definition, vertical), [definition, vertical]);
  const byId = new Map(layout.nodes.map((n) => [n.id, n]));

  const move = (from: DagNode, key: string) => {
    const [dl, dor] =
      key === "ArrowRight"
        ? [1, 0]
        : key === "ArrowLeft"
          ? [-1, 0]
          : key === "ArrowDown"
            ? [0, 1]
            : [0, -1];
    const [dLayer, dOrder] = vertical ? [dor, dl] : [dl, dor];
    const candidates = layout.nodes.filter((n) =>
      dLayer !== 0
        ? n.layer === from.layer + dLayer
        : n.layer === from.layer && n.order === from.order + dOrder,
    );
    const next = candidates.sort(
      (a, b) => Math.abs(a.order - from.order) - Math.abs(b.order - from.order),
    )[0];
    if (next) {
      const el = document.querySelector<SVGGElement>(`[data-task="${CSS.escape(next.id)}"]`);
      el?.focus();
    }
  };

  // Edges never change for a definition; nodes re-render only when their own state does.
  const edges = useMemo(
    () => (
      <>
        {layout.edges.map((e, i) => {
          const a = byId.get(e.from);
          const b = byId.get(e.to);
          if (!a || !b) return null;
          const d = edgePath(layout, a, b);
          return (
            <g key={i}>
              <path d={d} class={`edge edge-${e.kind}`} marker-end={`url(#arrow-${e.kind})`} />
              {e.label ? (
                <text
                  class="edge-label"
                  x={(a.x + b.x + NODE_W) / 2}
                  y={(a.y + b.y + NODE_H) / 2 - 4}
                  text-anchor="middle"
                >
                  {e.label}
                </text>
              ) : null}
            </g>
          );
        })}
      </>
    ),
    [layout],
  );
  const onSelectRef = useRef(onSelect);
  onSelectRef.current = onSelect;
  const actions = useMemo<NodeActions>(
    () => ({ select: (id) => onSelectRef.current(id), move }),
    [layout],
  );

  return (
    <div class="dag-wrap">
      <svg
        class="dag"
        width={layout.width}
        height={layout.height}
        viewBox={`0 0 ${layout.width} ${layout.height}`}
        role="group"
        aria-label="task graph"
      >
        <defs>
          {["completed", "failed", "exit", "join"].map((k) => (
            <marker
              key={k}
              id={`arrow-${k}`}
              viewBox="0 0 10 10"
              refX="9"
              refY="5"
              markerWidth="7"
              markerHeight="7"
              orient="auto-start-reverse"
            >
              <path d="M0,0 L10,5 L0,10 z" class={`arrow-${k}`} />
            </marker>
          ))}
        </defs>
        {edges}
        {layout.nodes.map((n) => {
          const t = tasks[n.id];
          return (
            <Node
              key={n.id}
              node={n}
              state={t?.state ?? (jobEnded ? "SKIPPED" : "WAITING")}
              attempts={t?.attempts ?? 0}
              selected={selected === n.id}
              actions={actions}
            />
          );
        })}
      </svg>
    </div>
  );
}
