/**
 * A task's output, live: streamed with fetch (`?follow=1`), split into lines as it
 * arrives (log-model.ts), and drawn virtualised: only the lines in view (plus a margin)
 * are in the DOM, whatever the size of the output. It follows the end while the reader
 * is at the bottom, and stops following when they scroll up. Reading yields to the page
 * every few milliseconds, so a fast writer cannot freeze it.
 */
import type { JSX } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { afterCarriageReturns, segments, styleClass } from "../ansi.ts";
import { bytes } from "../format.ts";
import { LogModel } from "../log-model.ts";

const LINE_HEIGHT = 18;
const OVERSCAN = 30;
/** Longer lines are cut when drawn (the download has them whole). */
const MAX_DRAWN_CHARS = 4000;
const LARGE = 16 * 1024 * 1024;
const TAIL = 8 * 1024 * 1024;

interface Props {
  /** The output URL, without follow/offset parameters. */
  src: string;
  /** Keep the response open until the task ends. */
  follow: boolean;
  /**
   * How many bytes the output has already, when known: a longer one than LARGE is shown
   * from TAIL bytes before its end (the raw output link has all of it), so opening a
   * task that wrote gigabytes does not download them into the page.
   */
  size?: () => Promise<number | undefined>;
  /** A link to the whole output. */
  download?: string;
}

/** Lets the page paint between chunks: scheduler.yield where there is one. */
function yieldToPage(): Promise<void> {
  const s = (globalThis as { scheduler?: { yield?: () => Promise<void> } }).scheduler;
  if (s?.yield) return s.yield();
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export function LogView({ src, follow, size, download }: Props): JSX.Element {
  const model = useMemo(() => new LogModel(), [src]);
  const sizeRef = useRef(size);
  sizeRef.current = size;
  const box = useRef<HTMLDivElement>(null);
  const [, setVersion] = useState(0);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(400);
  const [stuck, setStuck] = useState(true);
  const [error, setError] = useState<string | undefined>();
  const frame = useRef(0);
  const stuckRef = useRef(true);
  stuckRef.current = stuck;

  // Stream the output into the model; redraw at most once per frame.
  useEffect(() => {
    const abort = new AbortController();
    const redraw = () => {
      if (frame.current) return;
      frame.current = requestAnimationFrame(() => {
        frame.current = 0;
        setVersion(model.version);
      });
    };
    void (async () => {
      try {
        const known = await sizeRef.current?.().catch(() => undefined);
        const offset = known !== undefined && known > LARGE ? known - TAIL : 0;
        model.skip(offset);
        const params = new URLSearchParams();
        if (follow) params.set("follow", "1");
        if (offset > 0) params.set("offset", String(offset));
        const url = src + (src.includes("?") ? "&" : "?") + params.toString();
        const res = await fetch(url, { credentials: "same-origin", signal: abort.signal });
        if (!res.ok || !res.body) {
          const text = await res.text();
          let message = text;
          try {
            message = (JSON.parse(text) as { error: { message: string } }).error.message;
          } catch {
            // plain text
          }
          setError(message || `HTTP ${res.status}`);
          return;
        }
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let slice = performance.now();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          model.bytes += value.byteLength;
          model.push(decoder.decode(value, { stream: true }));
          redraw();
          if (performance.now() - slice > 8) {
            await yieldToPage();
            slice = performance.now();
          }
        }
        model.push(decoder.decode());
        model.end();
        redraw();
      } catch (e) {
        if ((e as Error).name !== "AbortError") setError((e as Error).message);
      }
    })();
    return () => {
      abort.abort();
      cancelAnimationFrame(frame.current);
      frame.current = 0;
    };
  }, [model, src, follow]);

  // The box's height decides how many lines are drawn.
  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    const observer = new ResizeObserver(() => setHeight(el.clientHeight));
    observer.observe(el);
    setHeight(el.clientHeight);
    return () => observer.disconnect();
  }, []);

  // Following: stay at the end as lines arrive, unless the reader has moved away from
  // where the end was (their scroll event may not have arrived yet).
  const count = model.count;
  const lastEnd = useRef(0);
  useLayoutEffect(() => {
    const el = box.current;
    if (!el || !stuck) return;
    const wasAtEnd = el.scrollTop + el.clientHeight >= lastEnd.current - LINE_HEIGHT;
    if (!wasAtEnd && lastEnd.current > 0) {
      setStuck(false);
      return;
    }
    el.scrollTop = el.scrollHeight;
    lastEnd.current = el.scrollHeight;
    setScrollTop(el.scrollTop);
  });

  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - LINE_HEIGHT;
    if (atEnd !== stuckRef.current) setStuck(atEnd);
  };

  const first = Math.max(0, Math.floor(scrollTop / LINE_HEIGHT) - OVERSCAN);
  const last = Math.min(count, Math.ceil((scrollTop + height) / LINE_HEIGHT) + OVERSCAN);
  const rows: JSX.Element[] = [];
  for (let i = first; i < last; i++) rows.push(<Line key={i} model={model} index={i} />);

  const toEnd = () => {
    const el = box.current;
    if (el) {
      el.scrollTop = el.scrollHeight;
      lastEnd.current = el.scrollHeight;
    }
    setStuck(true);
  };

  return (
    <div class="log">
      <div class="log-bar">
        <span class="log-status" data-ended={model.ended ? "1" : "0"}>
          {error
            ? `error: ${error}`
            : `${(model.dropped + count).toLocaleString()} lines · ${bytes(model.bytes + model.skippedBytes)}${model.ended ? " · ended" : follow ? " · following" : ""}`}
        </span>
        {model.skippedBytes > 0 || model.dropped > 0 ? (
          <span class="muted">earlier output not shown</span>
        ) : null}
        <span class="spacer" />
        {!stuck && count > 0 ? (
          <button type="button" class="small" onClick={toEnd}>
            Jump to end ↓
          </button>
        ) : null}
        {download ? (
          <a class="small button" href={download} target="_blank" rel="noopener">
            Raw output
          </a>
        ) : null}
      </div>
      <div
        class="log-box"
        ref={box}
        onScroll={onScroll}
        tabIndex={0}
        role="log"
        aria-label="task output"
      >
        <div class="log-space" style={{ height: `${count * LINE_HEIGHT}px` }}>
          <div class="log-rows" style={{ transform: `translateY(${first * LINE_HEIGHT}px)` }}>
            {rows}
          </div>
        </div>
        {count === 0 && !error ? (
          <div class="log-empty">{model.ended ? "(no output)" : "waiting for output…"}</div>
        ) : null}
      </div>
    </div>
  );
}

function Line({ model, index }: { model: LogModel; index: number }): JSX.Element {
  let text = afterCarriageReturns(model.line(index));
  const cut = text.length > MAX_DRAWN_CHARS;
  if (cut) text = text.slice(0, MAX_DRAWN_CHARS);
  const parts = segments(text, model.styleAt(index));
  return (
    <div class="log-line" data-line={model.number(index)}>
      <span class="log-no">{model.number(index)}</span>
      {parts.map((p, i) => {
        const { className, css } = styleClass(p.style);
        return className || css ? (
          <span key={i} class={className} style={css}>
            {p.text}
          </span>
        ) : (
          p.text
        );
      })}
      {cut ? <span class="muted"> … (line cut; see the raw output)</span> : null}
    </div>
  );
}
