/**
 * The dashboard's pure parts, in Node: ANSI colour parsing, the log model behind the
 * virtualised output view (lines split as they arrive, styles carried across lines,
 * the oldest dropped past the cap), and the DAG layout.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { afterCarriageReturns, applySgr, segments, styleClass } from "../web/src/ansi.ts";
import { dagEdges, layoutDag } from "../web/src/dag-layout.ts";
import { waitingWhy } from "../web/src/format.ts";
import { LogModel, MAX_LINES } from "../web/src/log-model.ts";
import type { JobDefinitionView } from "../web/src/types.ts";

describe("ANSI", () => {
  it("turns SGR sequences into styled segments and drops other escapes", () => {
    const s = segments("a\x1b[31mred\x1b[1;42m bold on green\x1b[0m plain\x1b[2K\x1b]0;title\x07!");
    assert.deepEqual(
      s.map((x) => [x.text, styleClass(x.style).className]),
      [
        ["a", ""],
        ["red", "a-f1"],
        [" bold on green", "a-f1 a-b2 a-bold"],
        [" plain", ""],
        ["!", ""],
      ],
    );
  });

  it("reads 256-colour and true-colour codes, bright colours and resets", () => {
    assert.deepEqual(applySgr({}, "38;5;196"), { fg: "#ff0000" });
    assert.deepEqual(applySgr({}, "38;5;9"), { fg: 9 });
    assert.deepEqual(applySgr({}, "48;2;1;2;255"), { bg: "#0102ff" });
    assert.deepEqual(applySgr({ fg: 1, bold: true }, "39;22"), {
      fg: undefined,
      bold: undefined,
      dim: undefined,
    });
    assert.deepEqual(applySgr({}, "94"), { fg: 12 });
    assert.deepEqual(styleClass(applySgr({}, "38;5;196")), {
      className: "",
      css: { color: "#ff0000" },
    });
  });

  it("shows what a terminal shows after carriage returns", () => {
    assert.equal(afterCarriageReturns("10%\r50%\r100% done\r"), "100% done");
    assert.equal(afterCarriageReturns("plain"), "plain");
  });
});

describe("LogModel", () => {
  it("splits chunks into lines wherever they are cut, keeping the unfinished one", () => {
    const lines = new LogModel();
    lines.push("a\n\nb");
    assert.deepEqual([lines.count, lines.line(0), lines.line(1), lines.line(2)], [3, "a", "", "b"]);
    const m = new LogModel();
    m.push("one\ntw");
    m.push("o\nthr");
    assert.equal(m.count, 3);
    assert.deepEqual([m.line(0), m.line(1), m.line(2)], ["one", "two", "thr"]);
    m.push("ee\n");
    assert.equal(m.count, 3);
    assert.equal(m.line(2), "three");
    assert.equal(m.number(2), 3);
  });

  it("carries colours across lines, as a terminal does", () => {
    const m = new LogModel();
    m.push("plain\n\x1b[32mgreen starts\nstill green\n\x1b[0mplain again\n");
    assert.deepEqual(m.styleAt(0), {});
    assert.deepEqual(m.styleAt(1), {});
    assert.deepEqual(m.styleAt(2), { fg: 2 });
    assert.deepEqual(m.styleAt(3), { fg: 2 });
    assert.deepEqual(
      segments(m.line(3), m.styleAt(3)).map((s) => s.text),
      ["plain again"],
    );
  });

  it("reads lines and colours that span chunks", () => {
    const m = new LogModel();
    m.push("abc\x1b[3");
    m.push("1mred");
    m.push(" still\nnext\n");
    assert.equal(m.line(0), "abc\x1b[31mred still");
    assert.deepEqual(m.styleAt(1), { fg: 1 });
    assert.equal(m.line(1), "next");
  });

  it("drops the oldest lines past the cap, numbering on", () => {
    const m = new LogModel();
    const chunk = "x\n".repeat(100_000);
    for (let i = 0; i < 11; i++) m.push(chunk);
    m.push("last\n");
    assert.ok(m.count <= MAX_LINES);
    assert.equal(m.dropped + m.count, 1_100_001);
    assert.equal(m.line(0), "x");
    assert.equal(m.line(m.count - 1), "last");
    assert.equal(m.number(m.count - 1), 1_100_001);
  });

  it("started mid-file, leaves out the cut first line", () => {
    const m = new LogModel({ skippedBytes: 1000 });
    m.push("ut line\nwhole line\n");
    assert.equal(m.count, 1);
    assert.equal(m.line(0), "whole line");
  });
});

describe("DAG layout", () => {
  const hello: JobDefinitionView = {
    job_type: "hello-dag",
    tasks: [
      { task_type: "greet", method: "SHELL", on_completed: ["count", "letters"] },
      { task_type: "count", method: "SHELL" },
      { task_type: "letters", method: "SHELL", on_failed: ["cleanup"] },
      { task_type: "report", method: "SHELL", depends_on: ["count", "letters"] },
      { task_type: "cleanup", method: "SHELL", always_run: true },
      { task_type: "audit", method: "SHELL", always_run: true },
      { task_type: "check", method: "SHELL", on_exit_code: { "0": "report", "3": "FAILED" } },
    ],
  };

  it("draws edges for on_completed, on_failed, on_exit_code (tasks only) and depends_on", () => {
    assert.deepEqual(
      dagEdges(hello).map((e) => `${e.from}>${e.to}:${e.kind}${e.label ? `(${e.label})` : ""}`),
      [
        "greet>count:completed",
        "greet>letters:completed",
        "letters>cleanup:failed",
        "count>report:join",
        "letters>report:join",
        "check>report:exit(exit 0)",
      ],
    );
  });

  it("puts every task after what leads to it, and lone always_run tasks last", () => {
    const layout = layoutDag(hello, false);
    const layer = Object.fromEntries(layout.nodes.map((n) => [n.id, n.layer]));
    assert.equal(layer.greet, 0);
    assert.equal(layer.count, 1);
    assert.equal(layer.letters, 1);
    assert.equal(layer.report, 2);
    assert.equal(layer.cleanup, 2);
    assert.equal(layer.audit, 3, "an always_run task nothing leads to runs at the end");
    for (const e of layout.edges) assert.ok(layer[e.from]! < layer[e.to]!, `${e.from} -> ${e.to}`);
    const vertical = layoutDag(hello, true);
    assert.ok(vertical.height > vertical.width);
    assert.ok(layout.width > layout.height);
  });
});

describe("the ants page: why a task waits", () => {
  it("says it for each reason GET /api/ants gives, left PENDING first", () => {
    assert.equal(waitingWhy("no_ant", true), "no connected ant serves it (job left pending)");
    assert.equal(waitingWhy("no_ant", false), "no connected ant serves it");
    assert.equal(waitingWhy("busy", false), "every ant for it is full");
    assert.equal(
      waitingWhy("reconnect", false),
      "an agent may hold it: waiting for agents to reconnect",
    );
  });
});
